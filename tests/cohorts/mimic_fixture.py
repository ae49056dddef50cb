"""Schema-faithful synthetic MIMIC-III v1.4 and MIMIC-IV folders: a handful of patients in the
real file layout, table and column names and types.

    python tests/cohorts/mimic_fixture.py --version iv --out /tmp/mimic-iv
    python tests/cohorts/mimic_fixture.py --version iii --out /tmp/mimic-iii

The patients (the tests compute their expected blocks by hand from the numbers below):

1. ``1001`` F 70 y, MetaVision, dies in hospital. Culture 01-01 10:00 *before* vancomycin at
   14:00 -> suspicion (onset) 10:00. ICU 01-01 06:00 to 01-05 12:00. Platelets 200 -> 90 and
   creatinine 2.1 after onset (SOFA rise). Lactate charted twice in one block (2.0 at 07:00,
   4.0 at 09:30). Norepinephrine 0.1 ug/kg/min 11:00-16:00 then 0.3 to 18:30 (crosses the
   14:00 and 18:00 block boundaries); vasopressin 3.6 U/h 20:00-23:00. Fluids: NaCl 0.9 %
   bolus 500 mL 11:00-11:15, Lactated Ringer's maintenance 100 mL/h 12:00-20:00, NaCl 0.45 %
   200 mL 15:00-15:30, dextrose 5 % 250 mL 09:00-11:30. Urine 100 / 50 / 30 mL at 09:00 /
   13:00 / 17:00. Notes: one charted 13:00 (signed 13:10), one charted 14:30 (after the 14:00
   decision), a discharge summary; MIMIC-III also a dated-only ECG report (01-01) and an
   erroneous note (ISERROR).
2. ``1002`` M 55 y (CareVue in MIMIC-III), survives the hospital, dies 22 days after discharge.
   Cefepime 03-02 09:00 (MIMIC-III: its start *date*), culture 20:00 (*after* the antibiotic).
   ICU 03-02 08:00 to 03-05 08:00. GCS 9 at 10:00. Norepinephrine 8 ug/min (80 kg) 12:00-14:00;
   NaCl 0.9 % 250 mL given at 13:00.
3. ``1003`` 45 y: an antibiotic but no culture -> no suspected infection.
4. ``1004`` 16 y: a child -> not in the cohort.
5. ``1005`` 60 y: culture and antibiotic, normal values -> SOFA < 2, not septic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

__all__ = ["write_fixture", "fixture_tables", "load_into_postgres"]

_TS = "%Y-%m-%d %H:%M:%S"

# column order of the real tables (MIMIC-IV v2.2 / MIMIC-III v1.4)
IV_COLUMNS = {
    "hosp/patients": ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group",
                      "dod"],
    "hosp/admissions": ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                        "admission_type", "admit_provider_id", "admission_location",
                        "discharge_location", "insurance", "language", "marital_status", "race",
                        "edregtime", "edouttime", "hospital_expire_flag"],
    "icu/icustays": ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit",
                     "intime", "outtime", "los"],
    "icu/chartevents": ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime",
                        "storetime", "itemid", "value", "valuenum", "valueuom", "warning"],
    "hosp/labevents": ["labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid",
                       "order_provider_id", "charttime", "storetime", "value", "valuenum",
                       "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority",
                       "comments"],
    "icu/inputevents": ["subject_id", "hadm_id", "stay_id", "caregiver_id", "starttime",
                        "endtime", "storetime", "itemid", "amount", "amountuom", "rate",
                        "rateuom", "orderid", "linkorderid", "ordercategoryname",
                        "secondaryordercategoryname", "ordercomponenttypedescription",
                        "ordercategorydescription", "patientweight", "totalamount",
                        "totalamountuom", "isopenbag", "continueinnextdept",
                        "statusdescription", "originalamount", "originalrate"],
    "icu/outputevents": ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime",
                         "storetime", "itemid", "value", "valueuom"],
    "hosp/prescriptions": ["subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq",
                           "order_provider_id", "starttime", "stoptime", "drug_type", "drug",
                           "formulary_drug_cd", "gsn", "ndc", "prod_strength", "form_rx",
                           "dose_val_rx", "dose_unit_rx", "form_val_disp", "form_unit_disp",
                           "doses_per_24_hrs", "route"],
    "hosp/microbiologyevents": ["microevent_id", "subject_id", "hadm_id", "micro_specimen_id",
                                "order_provider_id", "chartdate", "charttime", "spec_itemid",
                                "spec_type_desc", "test_seq", "storedate", "storetime",
                                "test_itemid", "test_name", "org_itemid", "org_name",
                                "isolate_num", "quantity", "ab_itemid", "ab_name",
                                "dilution_text", "dilution_comparison", "dilution_value",
                                "interpretation", "comments"],
    "note/radiology": ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                       "storetime", "text"],
    "note/discharge": ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                       "storetime", "text"],
}  # fmt: skip
III_COLUMNS = {
    "PATIENTS": ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN",
                 "EXPIRE_FLAG"],
    "ADMISSIONS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME",
                   "ADMISSION_TYPE", "ADMISSION_LOCATION", "DISCHARGE_LOCATION", "INSURANCE",
                   "LANGUAGE", "RELIGION", "MARITAL_STATUS", "ETHNICITY", "EDREGTIME",
                   "EDOUTTIME", "DIAGNOSIS", "HOSPITAL_EXPIRE_FLAG", "HAS_CHARTEVENTS_DATA"],
    "ICUSTAYS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "DBSOURCE", "FIRST_CAREUNIT",
                 "LAST_CAREUNIT", "FIRST_WARDID", "LAST_WARDID", "INTIME", "OUTTIME", "LOS"],
    "CHARTEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME",
                    "STORETIME", "CGID", "VALUE", "VALUENUM", "VALUEUOM", "WARNING", "ERROR",
                    "RESULTSTATUS", "STOPPED"],
    "LABEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM",
                  "VALUEUOM", "FLAG"],
    "INPUTEVENTS_MV": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTTIME", "ENDTIME",
                       "ITEMID", "AMOUNT", "AMOUNTUOM", "RATE", "RATEUOM", "STORETIME", "CGID",
                       "ORDERID", "LINKORDERID", "ORDERCATEGORYNAME",
                       "SECONDARYORDERCATEGORYNAME", "ORDERCOMPONENTTYPEDESCRIPTION",
                       "ORDERCATEGORYDESCRIPTION", "PATIENTWEIGHT", "TOTALAMOUNT",
                       "TOTALAMOUNTUOM", "ISOPENBAG", "CONTINUEINNEXTDEPT", "CANCELREASON",
                       "STATUSDESCRIPTION", "COMMENTS_EDITEDBY", "COMMENTS_CANCELEDBY",
                       "COMMENTS_DATE", "ORIGINALAMOUNT", "ORIGINALRATE"],
    "INPUTEVENTS_CV": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "CHARTTIME", "ITEMID",
                       "AMOUNT", "AMOUNTUOM", "RATE", "RATEUOM", "STORETIME", "CGID", "ORDERID",
                       "LINKORDERID", "STOPPED", "NEWBOTTLE", "ORIGINALAMOUNT",
                       "ORIGINALAMOUNTUOM", "ORIGINALROUTE", "ORIGINALRATE", "ORIGINALRATEUOM",
                       "ORIGINALSITE"],
    "OUTPUTEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "CHARTTIME", "ITEMID",
                     "VALUE", "VALUEUOM", "STORETIME", "CGID", "STOPPED", "NEWBOTTLE",
                     "ISERROR"],
    "PRESCRIPTIONS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "ENDDATE",
                      "DRUG_TYPE", "DRUG", "DRUG_NAME_POE", "DRUG_NAME_GENERIC",
                      "FORMULARY_DRUG_CD", "GSN", "NDC", "PROD_STRENGTH", "DOSE_VAL_RX",
                      "DOSE_UNIT_RX", "FORM_VAL_DISP", "FORM_UNIT_DISP", "ROUTE"],
    "MICROBIOLOGYEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME",
                           "SPEC_ITEMID", "SPEC_TYPE_DESC", "ORG_ITEMID", "ORG_NAME",
                           "ISOLATE_NUM", "AB_ITEMID", "AB_NAME", "DILUTION_TEXT",
                           "DILUTION_COMPARISON", "DILUTION_VALUE", "INTERPRETATION"],
    "NOTEEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                   "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"],
}  # fmt: skip

_DATETIME = {
    "dod", "admittime", "dischtime", "deathtime", "edregtime", "edouttime", "intime", "outtime",
    "charttime", "storetime", "starttime", "endtime", "stoptime", "chartdate", "storedate", "dob",
    "dod_hosp", "dod_ssn", "startdate", "enddate", "comments_date",
}  # fmt: skip


def _ts(s: str | None):
    return None if s is None else pd.Timestamp(s)


# --- the logical patients (version-independent) -------------------------------------------
PATIENTS = [  # subject, gender, age at admission, year of admission, dod
    (1001, "F", 70, 2150, "2150-01-05"),
    (1002, "M", 55, 2151, "2151-04-01"),
    (1003, "M", 45, 2152, None),
    (1004, "F", 16, 2153, None),
    (1005, "F", 60, 2154, None),
]
ADMISSIONS = [  # subject, hadm, admit, discharge, deathtime, expired
    (1001, 2001, "2150-01-01 00:00", "2150-01-05 12:00", "2150-01-05 12:00", 1),
    (1002, 2002, "2151-03-01 20:00", "2151-03-10 12:00", None, 0),
    (1003, 2003, "2152-05-01 00:00", "2152-05-06 00:00", None, 0),
    (1004, 2004, "2153-07-01 00:00", "2153-07-06 00:00", None, 0),
    (1005, 2005, "2154-09-01 00:00", "2154-09-06 00:00", None, 0),
]
STAYS = [  # subject, hadm, stay, intime, outtime, carevue (MIMIC-III only)
    (1001, 2001, 3001, "2150-01-01 06:00", "2150-01-05 12:00", False),
    (1002, 2002, 3002, "2151-03-02 08:00", "2151-03-05 08:00", True),
    (1003, 2003, 3003, "2152-05-01 08:00", "2152-05-04 08:00", False),
    (1004, 2004, 3004, "2153-07-01 08:00", "2153-07-04 08:00", False),
    (1005, 2005, 3005, "2154-09-01 08:00", "2154-09-04 08:00", False),
]
# charted values: subject, time, (MetaVision item, CareVue item), value
CHART = [
    (1001, "2150-01-01 06:30", (226512, 762), 80.0),  # admission weight, kg
    (1001, "2150-01-01 09:00", (220045, 211), 110.0),  # heart rate
    (1001, "2150-01-01 13:00", (220045, 211), 95.0),
    (1001, "2150-01-01 09:00", (220181, 456), 62.0),  # mean BP (non-invasive)
    (1002, "2151-03-02 08:30", (226512, 762), 80.0),
    (1002, "2151-03-02 10:00", (220045, 211), 100.0),
    (1002, "2151-03-02 10:00", (220181, 456), 75.0),
    (1003, "2152-05-01 09:00", (226512, 762), 70.0),
    (1004, "2153-07-01 09:00", (226512, 762), 50.0),
    (1005, "2154-09-01 09:00", (226512, 762), 65.0),
    (1005, "2154-09-01 10:00", (220181, 456), 80.0),
]
GCS_1002 = ("2151-03-02 10:00", {220739: 2, 223900: 2, 223901: 5}, 9)  # components, CareVue 198
LABS = [  # subject, time, itemid, value
    (1001, "2149-12-31 22:00", 51265, 200.0),  # platelets, before the stay
    (1001, "2150-01-01 12:30", 51265, 90.0),
    (1001, "2150-01-01 12:30", 50912, 2.1),  # creatinine
    (1001, "2150-01-01 07:00", 50813, 2.0),  # lactate, twice in one block
    (1001, "2150-01-01 09:30", 50813, 4.0),
    (1005, "2154-09-01 11:00", 51265, 250.0),
    (1005, "2154-09-01 11:00", 50912, 0.8),
]
# infusions (MetaVision): subject, start, end, itemid, amount, amountuom, rate, rateuom
INFUSIONS = [
    (1001, "2150-01-01 11:00", "2150-01-01 16:00", 221906, 2.4, "mg", 0.1, "mcg/kg/min"),
    (1001, "2150-01-01 16:00", "2150-01-01 18:30", 221906, 3.6, "mg", 0.3, "mcg/kg/min"),
    (1001, "2150-01-01 20:00", "2150-01-01 23:00", 222315, 10.8, "units", 3.6, "units/hour"),
    (1001, "2150-01-01 11:00", "2150-01-01 11:15", 225158, 500.0, "ml", None, None),
    (1001, "2150-01-01 12:00", "2150-01-01 20:00", 225828, 800.0, "ml", 100.0, "mL/hour"),
    (1001, "2150-01-01 15:00", "2150-01-01 15:30", 225159, 200.0, "ml", 400.0, "mL/hour"),
    (1001, "2150-01-01 09:00", "2150-01-01 11:30", 220949, 250.0, "ml", 100.0, "mL/hour"),
    (1002, "2151-03-02 12:00", "2151-03-02 14:00", 221906, 0.96, "mg", 8.0, "mcg/min"),
    (1002, "2151-03-02 12:45", "2151-03-02 13:00", 225158, 250.0, "ml", None, None),
]
URINE = [
    (1001, "2150-01-01 09:00", 100.0), (1001, "2150-01-01 13:00", 50.0),
    (1001, "2150-01-01 17:00", 30.0),
]  # fmt: skip
ANTIBIOTICS = [  # subject, start time, drug, route
    (1001, "2150-01-01 14:00", "Vancomycin", "IV"),
    (1001, "2150-01-01 16:00", "Erythromycin Ophthalmic Oint", "OU"),  # local: not systemic
    (1002, "2151-03-02 09:00", "CefePIME", "IV"),
    (1003, "2152-05-01 10:00", "CeftriaXONE", "IV"),
    (1005, "2154-09-01 10:00", "Piperacillin-Tazobactam", "IV"),
]
CULTURES = [  # subject, time, specimen
    (1001, "2150-01-01 10:00", "BLOOD CULTURE"),
    (1002, "2151-03-02 20:00", "URINE"),
    (1005, "2154-09-01 09:00", "BLOOD CULTURE"),
]
NOTES = [  # subject, charttime, storetime, text
    (1001, "2150-01-01 13:00", "2150-01-01 13:10", "CXR: new right lower lobe opacity."),
    (1001, "2150-01-01 14:30", "2150-01-01 14:40", "CT abdomen: no free air."),
]
DISCHARGE = (1001, "2150-01-05", "Discharge summary: the patient expired on hospital day 5.")
III_DATED_ONLY = (1001, "2150-01-01", "ECG", "Sinus tachycardia.")
III_ERROR_NOTE = (1001, "2150-01-01 12:00", "Nursing", "Charted on the wrong patient.")


def fixture_tables(version: str) -> dict[str, pd.DataFrame]:
    """The fixture as DataFrames keyed by file stem (``hosp/patients`` / ``PATIENTS``)."""
    if version == "iv":
        return _iv()
    if version == "iii":
        return _iii()
    raise ValueError("version must be 'iii' or 'iv'")


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records, columns=columns)
    for c in df.columns:
        if c.lower() in _DATETIME:
            df[c] = pd.to_datetime(df[c])
    return df


def _iv() -> dict[str, pd.DataFrame]:
    t: dict[str, list[dict]] = {k: [] for k in IV_COLUMNS}
    stay_of = {s[0]: s for s in STAYS}
    for subject, gender, age, year, dod in PATIENTS:
        t["hosp/patients"].append(dict(subject_id=subject, gender=gender, anchor_age=age,
                                       anchor_year=year, anchor_year_group="2008 - 2010",
                                       dod=dod))  # fmt: skip
    for subject, hadm, admit, disch, death, expired in ADMISSIONS:
        t["hosp/admissions"].append(dict(subject_id=subject, hadm_id=hadm, admittime=admit,
                                         dischtime=disch, deathtime=death,
                                         admission_type="EW EMER.",
                                         hospital_expire_flag=expired))  # fmt: skip
    for subject, hadm, stay, intime, outtime, _ in STAYS:
        los = (pd.Timestamp(outtime) - pd.Timestamp(intime)) / pd.Timedelta(days=1)
        t["icu/icustays"].append(dict(subject_id=subject, hadm_id=hadm, stay_id=stay,
                                      first_careunit="Medical Intensive Care Unit (MICU)",
                                      last_careunit="Medical Intensive Care Unit (MICU)",
                                      intime=intime, outtime=outtime, los=los))  # fmt: skip

    def chart(subject, time, itemid, value, uom=""):
        _, hadm, stay, *_ = stay_of[subject]
        t["icu/chartevents"].append(dict(subject_id=subject, hadm_id=hadm, stay_id=stay,
                                         caregiver_id=1, charttime=time, storetime=time,
                                         itemid=itemid, value=str(value), valuenum=value,
                                         valueuom=uom, warning=0))  # fmt: skip

    for subject, time, (mv, _), value in CHART:
        chart(subject, time, mv, value)
    time, parts, _ = GCS_1002
    for itemid, value in parts.items():
        chart(1002, time, itemid, float(value))
    for n, (subject, time, itemid, value) in enumerate(LABS):
        t["hosp/labevents"].append(dict(labevent_id=n + 1, subject_id=subject,
                                        hadm_id=stay_of[subject][1], specimen_id=n + 1,
                                        itemid=itemid, charttime=time, storetime=time,
                                        value=str(value), valuenum=value))  # fmt: skip
    for n, (subject, start, end, itemid, amount, auom, rate, ruom) in enumerate(INFUSIONS):
        _, hadm, stay, *_ = stay_of[subject]
        t["icu/inputevents"].append(dict(subject_id=subject, hadm_id=hadm, stay_id=stay,
                                         caregiver_id=1, starttime=start, endtime=end,
                                         storetime=end, itemid=itemid, amount=amount,
                                         amountuom=auom, rate=rate, rateuom=ruom, orderid=n + 1,
                                         linkorderid=n + 1, patientweight=80.0,
                                         statusdescription="FinishedRunning"))  # fmt: skip
    # a rewritten (erroneous, replaced) norepinephrine row that must not count
    t["icu/inputevents"].append(dict(subject_id=1001, hadm_id=2001, stay_id=3001,
                                     starttime="2150-01-01 11:00", endtime="2150-01-01 12:00",
                                     itemid=221906, amount=9.0, amountuom="mg", rate=2.0,
                                     rateuom="mcg/kg/min", patientweight=80.0,
                                     statusdescription="Rewritten"))  # fmt: skip
    for subject, time, value in URINE:
        _, hadm, stay, *_ = stay_of[subject]
        t["icu/outputevents"].append(dict(subject_id=subject, hadm_id=hadm, stay_id=stay,
                                          caregiver_id=1, charttime=time, storetime=time,
                                          itemid=226559, value=value, valueuom="ml"))  # fmt: skip
    for n, (subject, start, drug, route) in enumerate(ANTIBIOTICS):
        t["hosp/prescriptions"].append(dict(subject_id=subject, hadm_id=stay_of[subject][1],
                                            pharmacy_id=n + 1, starttime=start,
                                            stoptime=start, drug_type="MAIN", drug=drug,
                                            route=route))  # fmt: skip
    for n, (subject, time, spec) in enumerate(CULTURES):
        t["hosp/microbiologyevents"].append(dict(microevent_id=n + 1, subject_id=subject,
                                                 hadm_id=stay_of[subject][1],
                                                 micro_specimen_id=n + 1,
                                                 chartdate=time[:10], charttime=time,
                                                 spec_type_desc=spec,
                                                 test_name="culture"))  # fmt: skip
    for n, (subject, chart_t, store_t, text) in enumerate(NOTES):
        t["note/radiology"].append(dict(note_id=f"{subject}-RR-{n + 1}", subject_id=subject,
                                        hadm_id=stay_of[subject][1], note_type="RR",
                                        note_seq=n + 1, charttime=chart_t, storetime=store_t,
                                        text=text))  # fmt: skip
    subject, date, text = DISCHARGE
    t["note/discharge"].append(dict(note_id=f"{subject}-DS-1", subject_id=subject,
                                    hadm_id=stay_of[subject][1], note_type="DS", note_seq=1,
                                    charttime=date, storetime=date, text=text))  # fmt: skip
    return {k: _frame(v, IV_COLUMNS[k]) for k, v in t.items()}


def _iii() -> dict[str, pd.DataFrame]:
    t: dict[str, list[dict]] = {k: [] for k in III_COLUMNS}
    stay_of = {s[0]: s for s in STAYS}
    adm_of = {a[0]: a for a in ADMISSIONS}
    for n, (subject, gender, age, _, dod) in enumerate(PATIENTS):
        admit = pd.Timestamp(adm_of[subject][2])
        dob = admit - pd.DateOffset(years=age, days=30)
        t["PATIENTS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject, GENDER=gender,
                                  DOB=dob.strftime(_TS), DOD=dod, DOD_HOSP=None, DOD_SSN=dod,
                                  EXPIRE_FLAG=int(dod is not None)))  # fmt: skip
    for n, (subject, hadm, admit, disch, death, expired) in enumerate(ADMISSIONS):
        t["ADMISSIONS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject, HADM_ID=hadm,
                                    ADMITTIME=admit, DISCHTIME=disch, DEATHTIME=death,
                                    ADMISSION_TYPE="EMERGENCY", DIAGNOSIS="SEPSIS",
                                    HOSPITAL_EXPIRE_FLAG=expired,
                                    HAS_CHARTEVENTS_DATA=1))  # fmt: skip
    for n, (subject, hadm, stay, intime, outtime, carevue) in enumerate(STAYS):
        los = (pd.Timestamp(outtime) - pd.Timestamp(intime)) / pd.Timedelta(days=1)
        t["ICUSTAYS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject, HADM_ID=hadm,
                                  ICUSTAY_ID=stay, DBSOURCE="carevue" if carevue else "metavision",
                                  FIRST_CAREUNIT="MICU", LAST_CAREUNIT="MICU", FIRST_WARDID=1,
                                  LAST_WARDID=1, INTIME=intime, OUTTIME=outtime,
                                  LOS=los))  # fmt: skip

    def chart(subject, time, itemid, value, error=0):
        _, hadm, stay, *_ = stay_of[subject]
        t["CHARTEVENTS"].append(dict(ROW_ID=len(t["CHARTEVENTS"]) + 1, SUBJECT_ID=subject,
                                     HADM_ID=hadm, ICUSTAY_ID=stay, ITEMID=itemid,
                                     CHARTTIME=time, STORETIME=time, CGID=1, VALUE=str(value),
                                     VALUENUM=value, ERROR=error))  # fmt: skip

    for subject, time, (mv, cv), value in CHART:
        chart(subject, time, cv if stay_of[subject][5] else mv, value)
    time, _, total = GCS_1002
    chart(1002, time, 198, float(total))  # CareVue charts the GCS total
    chart(1001, "2150-01-01 09:30", 220045, 250.0, error=1)  # an erroneous heart rate
    for n, (subject, time, itemid, value) in enumerate(LABS):
        t["LABEVENTS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject,
                                   HADM_ID=stay_of[subject][1], ITEMID=itemid, CHARTTIME=time,
                                   VALUE=str(value), VALUENUM=value))  # fmt: skip
    for n, (subject, start, end, itemid, amount, auom, rate, ruom) in enumerate(INFUSIONS):
        _, hadm, stay, *_, carevue = stay_of[subject]
        if carevue:
            continue
        t["INPUTEVENTS_MV"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject, HADM_ID=hadm,
                                        ICUSTAY_ID=stay, STARTTIME=start, ENDTIME=end,
                                        ITEMID=itemid, AMOUNT=amount, AMOUNTUOM=auom, RATE=rate,
                                        RATEUOM=ruom, STORETIME=end, CGID=1, ORDERID=n + 1,
                                        LINKORDERID=n + 1, PATIENTWEIGHT=80.0,
                                        STATUSDESCRIPTION="FinishedRunning"))  # fmt: skip
    # CareVue (patient 1002): norepinephrine 8 mcg/min charted at 12:00 and 13:00, stopped
    # (rate 0) at 14:00; 250 mL normal saline charted at 13:00
    for n, (time, itemid, amount, auom, rate, ruom) in enumerate([
        ("2151-03-02 12:00", 30047, None, None, 8.0, "mcgmin"),
        ("2151-03-02 13:00", 30047, None, None, 8.0, "mcgmin"),
        ("2151-03-02 14:00", 30047, None, None, 0.0, "mcgmin"),
        ("2151-03-02 13:00", 30018, 250.0, "ml", None, None),
    ]):  # fmt: skip
        t["INPUTEVENTS_CV"].append(dict(ROW_ID=n + 1, SUBJECT_ID=1002, HADM_ID=2002,
                                        ICUSTAY_ID=3002, CHARTTIME=time, ITEMID=itemid,
                                        AMOUNT=amount, AMOUNTUOM=auom, RATE=rate, RATEUOM=ruom,
                                        STORETIME=time, CGID=1))  # fmt: skip
    for n, (subject, time, value) in enumerate(URINE):
        _, hadm, stay, *_ = stay_of[subject]
        t["OUTPUTEVENTS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject, HADM_ID=hadm,
                                      ICUSTAY_ID=stay, CHARTTIME=time, ITEMID=226559,
                                      VALUE=value, VALUEUOM="ml", STORETIME=time,
                                      CGID=1))  # fmt: skip
    for n, (subject, start, drug, route) in enumerate(ANTIBIOTICS):
        date = start[:10]
        t["PRESCRIPTIONS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject,
                                       HADM_ID=stay_of[subject][1], STARTDATE=date,
                                       ENDDATE=date, DRUG_TYPE="MAIN", DRUG=drug,
                                       ROUTE=route))  # fmt: skip
    for n, (subject, time, spec) in enumerate(CULTURES):
        t["MICROBIOLOGYEVENTS"].append(dict(ROW_ID=n + 1, SUBJECT_ID=subject,
                                            HADM_ID=stay_of[subject][1], CHARTDATE=time[:10],
                                            CHARTTIME=time, SPEC_TYPE_DESC=spec))  # fmt: skip

    def note(subject, date, chart_t, store_t, category, text, iserror=None):
        t["NOTEEVENTS"].append(dict(ROW_ID=len(t["NOTEEVENTS"]) + 1, SUBJECT_ID=subject,
                                    HADM_ID=stay_of[subject][1], CHARTDATE=date,
                                    CHARTTIME=chart_t, STORETIME=store_t, CATEGORY=category,
                                    DESCRIPTION="Report", CGID=1, ISERROR=iserror,
                                    TEXT=text))  # fmt: skip

    for subject, chart_t, store_t, text in NOTES:
        note(subject, chart_t[:10], chart_t, store_t, "Radiology", text)
    subject, date, text = DISCHARGE
    note(subject, date, None, None, "Discharge summary", text)
    subject, date, category, text = III_DATED_ONLY
    note(subject, date, None, None, category, text)
    subject, time, category, text = III_ERROR_NOTE
    note(subject, time[:10], time, time, category, text, iserror=1)
    return {k: _frame(v, III_COLUMNS[k]) for k, v in t.items()}


def write_fixture(version: str, out: str | Path, *, compress: bool = True) -> Path:
    """Write the fixture folder (``.csv.gz`` like PhysioNet, or ``.csv``); return it."""
    out = Path(out)
    suffix = ".csv.gz" if compress else ".csv"
    for stem, df in fixture_tables(version).items():
        path = out / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False, date_format=_TS)
    return out


def load_into_postgres(version: str, url: str, schemas: dict[str, str]) -> None:
    """Load the fixture into PostgreSQL as mimic-code does (lower-case tables and columns;
    MIMIC-IV modules in their own schemas). ``schemas`` maps module ("hosp", "icu", "note",
    or "" for MIMIC-III) to a schema, created if needed."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for schema in set(schemas.values()):
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        for stem, df in fixture_tables(version).items():
            module, _, name = stem.rpartition("/")
            frame = df.rename(columns=str.lower)
            frame.to_sql(name.lower(), engine, schema=schemas[module], index=False)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", choices=["iii", "iv"], required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    print(write_fixture(args.version, args.out))


if __name__ == "__main__":
    main()
