"""MEDS event streams → the cohort table (the same concepts and blocks as MIMIC).

A MEDS dataset (Medical Event Data Standard) is a folder of parquet files, one row per event:
``subject_id``, ``time``, ``code``, ``numeric_value`` (``value`` is accepted too), usually under
``data/`` beside ``metadata/``. SAFER reads streams made from MIMIC-IV by the MIMIC-IV MEDS ETL,
whose codes carry MIMIC's item ids, and normalises them into the canonical tables of
:mod:`safer.cohorts.mimic.canonical` with DuckDB, reading the parquet files in place:

==================================  =========================================================
code                                canonical table
==================================  =========================================================
``ICU_ADMISSION`` / ``ICU_DISCHARGE``  ``c_stays`` (paired in time order per subject; the
                                    stay id is ``subject_id * 100 + n``)
``HOSPITAL_ADMISSION`` / ``_DISCHARGE``  ``c_admissions``; death in hospital: discharge
                                    ``//DIED``, or ``MEDS_DEATH`` before discharge + 24 h
``MEDS_BIRTH``, ``GENDER//F|M``, ``MEDS_DEATH``  ``c_patients``
``LAB//<itemid>//<unit>``           ``c_measurements`` (labs and charted vitals, by item id)
``SUBJECT_WEIGHT_AT_INFUSION//KG``  ``c_measurements`` (weight)
``INFUSION_START`` / ``_END //<itemid>``  ``c_vaso`` (rate at start) and ``c_fluids`` (amount
                                    at end); starts and ends of one item are paired in time
                                    order per subject
``SUBJECT_FLUID_OUTPUT//<itemid>``  ``c_urine`` (urine items)
``MEDICATION//START//<drug>``       ``c_antibiotics`` (prescription starts)
==================================  =========================================================

MEDS keeps no rate unit, so each vasopressor's usual MIMIC-IV unit is assumed
(:data:`safer.cohorts.mimic.items.VASOPRESSORS`: µg/kg/min, vasopressin U/h). The MIMIC-IV
MEDS ETL carries no microbiology and no notes: suspicion of infection then rests on antibiotics
alone, and the summary says so.

Examples
--------
>>> from safer.cohorts.meds import build_meds_cohort  # doctest: +SKIP
>>> build = build_meds_cohort("../shared/data/mimic-iv-demo-meds")  # doctest: +SKIP
>>> build.summary["stays"]  # doctest: +SKIP
"""

from safer.cohorts.meds.reader import MEDS_COLUMNS, build_meds_cohort, fill_from_meds

__all__ = ["MEDS_COLUMNS", "build_meds_cohort", "fill_from_meds"]
