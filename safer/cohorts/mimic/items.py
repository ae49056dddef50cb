"""What each MIMIC item is, in the cohort's terms: item ids → features, drugs, fluids, outputs.

One dictionary per kind of item, shared by every source: the MIMIC-III and MIMIC-IV CSV folders,
a mimic-code PostgreSQL build, and MEDS streams made from MIMIC-IV (whose codes carry the same
item ids, e.g. ``LAB//220045//bpm``). MetaVision item ids (``22xxxx``) are shared by MIMIC-III's
MetaVision era and MIMIC-IV; CareVue ids (< 220000) appear in MIMIC-III only; laboratory ids
(``5xxxx``) are shared by both versions.

The lists are ours, written from the MIMIC documentation (``d_items`` / ``d_labitems`` labels)
and checked against the item choices of the mimic-code concepts and of the AI Clinician's
extraction; a researcher can read them here and change them in one place.

Limits and hold times
---------------------
:data:`LIMITS` are the plausible range of each measured feature in schema units: a value outside
it is an artefact or a unit error and is dropped (the AI Clinician's outlier removal). They lie
inside, and are mostly narrower than, the cohort schema's :data:`safer.cohorts.schema.LIMITS`:
the schema refuses what no body can show (a heart rate of 400), while extraction also drops what
a chart shows only by error (a heart rate of 5 beside a living patient's other vitals), so every
extracted cohort passes the schema's check.
:data:`HOLD_HOURS` is how long a measurement stays valid when nothing newer was charted
(sample-and-hold): vitals 4 h, temperature and GCS 8 h, FiO2 and ventilation 12 h, blood gases
and lactate 12 h, other laboratory values 28 h (a daily draw plus margin), weight a week.
"""

from __future__ import annotations

__all__ = [
    "FEATURE_ITEMS",
    "GCS_COMPONENTS",
    "VENT_ITEMS",
    "WEIGHT_ITEMS",
    "VASOPRESSORS",
    "FLUIDS",
    "URINE_ITEMS",
    "RATE_UNITS",
    "ANTIBIOTIC_NAMES",
    "ANTIBIOTIC_EXCLUDE",
    "LIMITS",
    "HOLD_HOURS",
    "MEASURED",
    "item_rows",
]

# feature -> [(itemid, scale, shift)]: value in schema units = raw * scale + shift
_F_TO_C = (5.0 / 9.0, -32.0 * 5.0 / 9.0)
FEATURE_ITEMS: dict[str, list[tuple[int, float, float]]] = {
    "HR": [(211, 1, 0), (220045, 1, 0)],
    "SysBP": [(51, 1, 0), (442, 1, 0), (455, 1, 0), (6701, 1, 0), (220050, 1, 0),
              (220179, 1, 0), (225309, 1, 0)],
    "MeanBP": [(52, 1, 0), (443, 1, 0), (456, 1, 0), (6702, 1, 0), (220052, 1, 0),
               (220181, 1, 0), (225312, 1, 0)],
    "DiaBP": [(8368, 1, 0), (8440, 1, 0), (8441, 1, 0), (8555, 1, 0), (220051, 1, 0),
              (220180, 1, 0), (225310, 1, 0)],
    "RR": [(615, 1, 0), (618, 1, 0), (220210, 1, 0), (224690, 1, 0)],
    "Temp_C": [(676, 1, 0), (223762, 1, 0), (678, *_F_TO_C), (223761, *_F_TO_C)],
    "SpO2": [(646, 1, 0), (220277, 1, 0)],
    # FiO2 is charted as a fraction (190) or a percentage (3420, 223835): percentages (> 1)
    # are divided by 100 in the concept layer, whichever item they come from
    "FiO2_1": [(190, 1, 0), (3420, 1, 0), (223835, 1, 0)],
    "GCS": [(198, 1, 0)],  # CareVue total; MetaVision charts components (GCS_COMPONENTS)
    "Potassium": [(50971, 1, 0), (50822, 1, 0), (829, 1, 0), (227442, 1, 0)],
    "Sodium": [(50983, 1, 0), (50824, 1, 0), (837, 1, 0), (220645, 1, 0)],
    "Chloride": [(50902, 1, 0), (50806, 1, 0), (788, 1, 0), (220602, 1, 0)],
    "Glucose": [(50931, 1, 0), (50809, 1, 0), (807, 1, 0), (811, 1, 0), (220621, 1, 0),
                (225664, 1, 0)],
    "Magnesium": [(50960, 1, 0), (821, 1, 0), (220635, 1, 0)],
    "Calcium": [(50893, 1, 0), (786, 1, 0), (225625, 1, 0)],
    "Hb": [(51222, 1, 0), (50811, 1, 0), (814, 1, 0), (220228, 1, 0)],
    "WBC_count": [(51300, 1, 0), (51301, 1, 0), (861, 1, 0), (1542, 1, 0), (220546, 1, 0)],
    "Platelets_count": [(51265, 1, 0), (828, 1, 0), (227457, 1, 0)],
    "PTT": [(51275, 1, 0), (825, 1, 0), (227466, 1, 0)],
    "PT": [(51274, 1, 0), (824, 1, 0), (227465, 1, 0)],
    "INR": [(51237, 1, 0), (815, 1, 0), (227467, 1, 0)],
    "Arterial_pH": [(50820, 1, 0), (780, 1, 0), (223830, 1, 0)],
    "paO2": [(50821, 1, 0), (779, 1, 0), (220224, 1, 0)],
    "paCO2": [(50818, 1, 0), (778, 1, 0), (220235, 1, 0)],
    "Arterial_BE": [(50802, 1, 0), (776, 1, 0), (224828, 1, 0)],
    "HCO3": [(50882, 1, 0), (50803, 1, 0), (227443, 1, 0)],
    "Arterial_lactate": [(50813, 1, 0), (818, 1, 0), (225668, 1, 0)],
    "BUN": [(51006, 1, 0), (781, 1, 0), (225624, 1, 0)],
    "Creatinine": [(50912, 1, 0), (791, 1, 0), (220615, 1, 0)],
    "SGOT": [(50878, 1, 0), (770, 1, 0), (220587, 1, 0)],
    "SGPT": [(50861, 1, 0), (769, 1, 0), (220644, 1, 0)],
    "Total_bili": [(50885, 1, 0), (848, 1, 0), (225690, 1, 0)],
}  # fmt: skip

# MetaVision's Glasgow coma scale is charted as three components, summed at each charting
GCS_COMPONENTS: dict[int, str] = {220739: "GCS_eye", 223900: "GCS_verbal", 223901: "GCS_motor"}

# any charting of a ventilator setting or mode marks invasive ventilation at that time
VENT_ITEMS: tuple[int, ...] = (
    720, 722, 445, 448, 449, 450, 543, 682, 683, 684,  # CareVue: type, mode, volumes, plateau
    223848, 223849, 229314, 224684, 224685, 224686, 224696,  # MetaVision: type, mode, volumes
)  # fmt: skip

# weights in kg (scale converts pounds)
WEIGHT_ITEMS: list[tuple[int, float, float]] = [
    (762, 1, 0), (763, 1, 0), (3580, 1, 0), (3581, 0.45359237, 0),
    (224639, 1, 0), (226512, 1, 0), (226531, 0.45359237, 0),
]  # fmt: skip

# itemid -> (drug, unit when the source gives none). Rates are normalised to ug/kg/min
# (catecholamines) or U/min (vasopressin) from each row's rate unit.
VASOPRESSORS: dict[int, tuple[str, str]] = {
    30047: ("norepinephrine", "ug/min"), 30120: ("norepinephrine", "ug/kg/min"),
    221906: ("norepinephrine", "ug/kg/min"),
    30044: ("epinephrine", "ug/min"), 30119: ("epinephrine", "ug/kg/min"),
    30309: ("epinephrine", "ug/kg/min"), 221289: ("epinephrine", "ug/kg/min"),
    30127: ("phenylephrine", "ug/min"), 30128: ("phenylephrine", "ug/kg/min"),
    221749: ("phenylephrine", "ug/kg/min"),
    30043: ("dopamine", "ug/kg/min"), 30307: ("dopamine", "ug/kg/min"),
    221662: ("dopamine", "ug/kg/min"),
    30051: ("vasopressin", "U/h"), 222315: ("vasopressin", "U/h"),
}  # fmt: skip

# rate unit as charted (lower case; MetaVision, CareVue, and the defaults above) ->
# (factor, canonical unit): canonical rate = charted rate x factor. A vasopressor row charted in
# another unit (e.g. mL/hour) has no known dose and is left out.
RATE_UNITS: dict[str, tuple[float, str]] = {
    "mcg/kg/min": (1.0, "ug/kg/min"), "mcgkgmin": (1.0, "ug/kg/min"),
    "ug/kg/min": (1.0, "ug/kg/min"),
    "mg/kg/min": (1000.0, "ug/kg/min"),
    "mcg/min": (1.0, "ug/min"), "mcgmin": (1.0, "ug/min"), "ug/min": (1.0, "ug/min"),
    "mg/min": (1000.0, "ug/min"),
    "units/min": (1.0, "U/min"), "umin": (1.0, "U/min"), "u/min": (1.0, "U/min"),
    "units/hour": (1.0 / 60.0, "U/min"), "uhr": (1.0 / 60.0, "U/min"), "u/h": (1.0 / 60.0, "U/min"),
}  # fmt: skip

# itemid -> tonicity factor: mL counted = mL given x factor (isotonic crystalloid = 1;
# half-normal saline 0.5; hypertonic saline and bicarbonate by their osmolarity relative to
# 0.9 % saline; 25 % albumin x 5 for its oncotic effect; free water and dextrose 5 % = 0,
# they expand no intravascular volume). Blood products, enteral and oral intake are not fluids
# here.
FLUIDS: dict[int, float] = {
    # MetaVision (MIMIC-III MetaVision and MIMIC-IV)
    225158: 1.0,  # NaCl 0.9 %
    225828: 1.0,  # Lactated Ringers
    225944: 0.0,  # Sterile water
    225797: 0.0,  # Free water
    220949: 0.0,  # Dextrose 5 %
    225159: 0.5,  # NaCl 0.45 %
    225823: 0.5,  # D5 1/2NS
    225825: 1.0,  # D5NS
    225827: 1.0,  # D5LR
    225941: 0.25,  # D5 1/4NS
    225161: 3.3,  # NaCl 3 %
    228341: 26.0,  # NaCl 23.4 %
    227533: 6.5,  # Sodium bicarbonate 8.4 % (amp)
    220862: 5.0,  # Albumin 25 %
    220864: 1.0,  # Albumin 5 %
    225174: 1.0,  # Hetastarch (Hespan) 6 %
    226364: 1.0,  # OR crystalloid intake
    226375: 1.0,  # PACU crystalloid intake
    226089: 1.0,  # Piggyback
    # CareVue (MIMIC-III)
    30018: 1.0,  # .9% Normal Saline
    30021: 1.0,  # Lactated Ringers
    30020: 0.5,  # .45% Normal Saline
    30015: 0.5,  # D5/.45NS
    30013: 0.0,  # D5W
    30176: 0.25,  # D5/.25NS
    30143: 3.3,  # 3% Normal Saline
    30008: 1.0,  # Albumin 5%
    30009: 5.0,  # Albumin 25%
    30181: 1.0,  # Serum albumin 5%
    30160: 1.0,  # D5 Normal Saline
    30168: 1.0,  # Hespan
    42548: 1.0,  # NS bolus
}  # fmt: skip

# urine output items (outputevents): Foley, void, condom catheter, suprapubic, nephrostomy,
# straight cath, ileal conduit (GU irrigant volumes are left out: in minus out is not urine)
URINE_ITEMS: tuple[int, ...] = (
    40055, 43175, 40069, 40094, 40715, 40473, 40085, 40057, 40056, 40405, 40428, 40086,
    40096, 40651,  # CareVue
    226559, 226560, 226561, 226584, 226563, 226564, 226565, 226567, 226557,
    226558,  # MetaVision
)  # fmt: skip

# systemic antibiotics, matched case-insensitively as substrings of the drug name
ANTIBIOTIC_NAMES: tuple[str, ...] = (
    "amikacin", "amoxicillin", "ampicillin", "azithromycin", "aztreonam", "bactrim",
    "cefazolin", "cefepime", "cefotaxime", "cefotetan", "cefoxitin", "cefpodoxime",
    "ceftaroline", "ceftazidime", "ceftriaxone", "cefuroxime", "cephalexin", "ciprofloxacin",
    "clarithromycin", "clindamycin", "colistin", "daptomycin", "doxycycline", "ertapenem",
    "erythromycin", "gentamicin", "imipenem", "levofloxacin", "linezolid", "meropenem",
    "metronidazole", "minocycline", "moxifloxacin", "nafcillin", "nitrofurantoin", "oxacillin",
    "penicillin", "piperacillin", "polymyxin", "rifampin", "sulfamethoxazole", "tigecycline",
    "tobramycin", "unasyn", "vancomycin", "zosyn",
)  # fmt: skip
# topical, ophthalmic and other local forms are not treatment of a suspected infection
ANTIBIOTIC_EXCLUDE: tuple[str, ...] = (
    "cream", "ointment", "oint", "ophth", "drops", "gel", "topical", "desensitization",
    "lock", "irrigation", "inhal", "neb",
)  # fmt: skip

# plausible range per measured feature, schema units (outside: dropped as an artefact)
LIMITS: dict[str, tuple[float, float]] = {
    "Weight_kg": (20, 350), "GCS": (3, 15), "HR": (10, 300), "SysBP": (20, 300),
    "MeanBP": (10, 250), "DiaBP": (5, 250), "RR": (1, 80), "Temp_C": (25, 45),
    "FiO2_1": (0.2, 1.0), "Potassium": (1, 15), "Sodium": (95, 180), "Chloride": (60, 160),
    "Glucose": (10, 2000), "Magnesium": (0.1, 10), "Calcium": (2, 20), "Hb": (1, 25),
    "WBC_count": (0, 500), "Platelets_count": (1, 2000), "PTT": (5, 200), "PT": (5, 200),
    "INR": (0.5, 20), "Arterial_pH": (6.5, 8.0), "paO2": (10, 800), "paCO2": (5, 200),
    "Arterial_BE": (-50, 40), "HCO3": (2, 60), "Arterial_lactate": (0.1, 30), "SpO2": (50, 100),
    "BUN": (1, 300), "Creatinine": (0.1, 30), "SGOT": (1, 20000), "SGPT": (1, 20000),
    "Total_bili": (0.05, 80), "mechvent": (0, 1),
}  # fmt: skip

_LAB_HOLD = 28.0
HOLD_HOURS: dict[str, float] = {
    "HR": 4, "SysBP": 4, "MeanBP": 4, "DiaBP": 4, "RR": 4, "SpO2": 4,
    "Temp_C": 8, "GCS": 8, "FiO2_1": 12, "mechvent": 12,
    "Arterial_pH": 12, "paO2": 12, "paCO2": 12, "Arterial_BE": 12, "Arterial_lactate": 12,
    "Weight_kg": 168,
    **{f: _LAB_HOLD for f in (
        "Potassium", "Sodium", "Chloride", "Glucose", "Magnesium", "Calcium", "Hb", "WBC_count",
        "Platelets_count", "PTT", "PT", "INR", "HCO3", "BUN", "Creatinine", "SGOT", "SGPT",
        "Total_bili",
    )},
}  # fmt: skip

# features read from measurements (the rest are computed: age, gender, re_admission, SOFA,
# SIRS, shock index, PaO2/FiO2, doses and balances)
MEASURED: tuple[str, ...] = tuple(LIMITS)


def item_rows() -> list[tuple[int, str, float, float]]:
    """Every measurement item as ``(itemid, feature, scale, shift)``: the one map that all
    sources join against (GCS components, ventilation and weights included)."""
    rows = [(i, f, float(a), float(b)) for f, items in FEATURE_ITEMS.items() for i, a, b in items]
    rows += [(i, f, 1.0, 0.0) for i, f in GCS_COMPONENTS.items()]
    rows += [(i, "mechvent", 0.0, 1.0) for i in VENT_ITEMS]  # presence = 1
    rows += [(i, "Weight_kg", float(a), float(b)) for i, a, b in WEIGHT_ITEMS]
    ids = [r[0] for r in rows]
    if len(ids) != len(set(ids)):  # pragma: no cover - guards an edit of the lists
        raise RuntimeError("an item id is mapped to two features in safer.cohorts.mimic.items")
    return rows
