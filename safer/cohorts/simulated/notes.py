"""Clinical notes written from the TRUE state of the simulator.

Each note is a second, differently-noisy view of the patient: it is composed from the state's
centroid in clinical units (not from the noisy measurements of the same step), in the style of
ICU nursing and physician progress notes — haemodynamics, pressor requirement, mentation,
ventilation, urine output, lactate trend, fluids, labs, temperature, antibiotics, the plan,
family discussions and code status. Wording varies (several phrasings per topic, abbreviations,
numbers rounded or given as ranges); topics are omitted at random; a small fraction of
sentences describe a neighbouring category (a charting contradiction).

Notes never mention the outcome: :data:`OUTCOME_WORDS` lists the words they must not contain,
and the tests check every generated note against it. The plan sentence reflects what the
clinicians' policy favours in the true state, as a real plan reflects the team's intent; it is
written before the decision (``note_time <= charttime``) and may differ from the dose given.

What a note says about treatment agrees with the treatment charted: the pressor sentence and the
"IVF in the last 4 h" sentence quote the dose actually given in the stay's previous 4-hour block
(``prev_vaso`` / ``prev_fluid``), never the state's typical dose, so a note never says "Levo at
0.09" when no vasopressor was given; at a stay's first step (nothing charted yet) they are left
out, and a plan only weans or titrates a pressor that is running.

Examples
--------
>>> import numpy as np
>>> from safer.cohorts.simulated.mdp import load_mdp
>>> from safer.cohorts.simulated.notes import write_notes
>>> mdp = load_mdp()
>>> notes, minutes = write_notes(mdp, states=np.array([3, 3]), prev_states=np.array([-1, 3]),
...                              steps=np.array([0, 1]), rng=np.random.default_rng(0))
>>> len(notes), bool(minutes.max() <= 240)
(2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.cohorts.schema import FEATURES
from safer.cohorts.simulated.mdp import IcuSepsisMDP
from safer.cohorts.simulated.observation import z_to_clinical

__all__ = ["write_notes", "draw_notes", "compose_notes", "NoteDraws", "OUTCOME_WORDS", "NOTE_FILL"]

NOTE_FILL = 0.85
OUTCOME_WORDS = (
    "died", "death", "dead", "deceased", "expired", "passed away", "demise", "mortality",
    "survived", "survival", "discharged", "discharge", "morgue", "autopsy", "hospice",
    "comfort measures", "cmo", "withdrawal of care", "withdrew care",
)  # fmt: skip

_I = {name: i for i, name in enumerate(FEATURES)}

_HEADERS = (
    "ICU progress note, HD{day}.", "MICU attending note:", "RN shift note.",
    "Nursing note {hh}:00 -",
    "Resident progress note (HD{day}):", "Sepsis f/u.", "Night float note:", "Brief ICU update:",
)  # fmt: skip


def _pick(u: float, options):
    return options[min(int(u * len(options)), len(options) - 1)]


def _tens(x: float) -> str:
    """'high 50s' style range."""
    base = int(x // 10) * 10
    part = x - base
    where = "low" if part < 3.5 else ("mid" if part < 6.5 else "high")
    return f"{where} {base}s"


def _haemodynamics(map_, hr, u) -> str:
    if map_ < 60:
        opts = (
            f"Remains hypotensive, MAP {map_:.0f}, HR {hr:.0f}.",
            f"BP soft with MAPs in the {_tens(map_)}, tachy {hr:.0f}.",
            f"Hypotension persists (MAP {map_:.0f} mmHg).",
            f"MAP {map_:.0f} despite interventions; HR {hr:.0f}.",
        )
    elif map_ < 70:
        opts = (
            f"MAP borderline {map_:.0f}, HR {hr:.0f}.",
            f"Marginal BP, MAPs {_tens(map_)}.",
            f"MAP hovering around {5 * round(map_ / 5):.0f}.",
        )
    else:
        opts = (
            f"Hemodynamically stable, MAP {map_:.0f}, HR {hr:.0f}.",
            f"HD stable, MAPs {_tens(map_)}.",
            f"BP adequate (MAP {map_:.0f}).",
            f"VSS, HR {hr:.0f}.",
        )
    return _pick(u, opts)


def _dose_text(dose: float) -> str:
    """A charted pressor dose as a note writes it: two significant digits (0.09, 0.004, 0.12)."""
    return f"{dose:.2g}"


def _pressors(dose, u) -> str:
    """The pressor sentence for the dose given in the previous block (NaN: nothing charted yet)."""
    if np.isnan(dose):
        return ""
    if dose <= 0:
        opts = ("Off pressors.", "No vasopressor requirement.", "Not on pressors at this time.")
    elif dose < 0.15:
        d = _dose_text(dose)
        opts = (
            f"On low-dose norepinephrine {d} mcg/kg/min.",
            f"Levo at {d}.",
            f"Requiring low dose levophed ({d}).",
        )
    elif dose < 0.4:
        d = _dose_text(dose)
        opts = (
            f"Norepi {d} mcg/kg/min, uptitrated overnight.",
            f"Moderate pressor requirement, levo {d}.",
            f"On NE {d}, vasopressin being considered.",
        )
    else:
        d = _dose_text(dose)
        opts = (
            f"High pressor requirement: norepi {d} + vasopressin 0.04.",
            f"On 2 pressors (NE {d}, vaso).",
            f"Escalating pressors, levo {d} mcg/kg/min.",
        )
    return _pick(u, opts)


def _mentation(gcs, vent, u) -> str:
    if vent and gcs < 11:
        opts = ("Sedated on propofol, RASS -3.", "Intubated/sedated, not following commands.",
                f"Sedated, GCS {gcs:.0f}T.")  # fmt: skip
    elif gcs >= 14:
        opts = ("A&Ox3, following commands.", "Alert, oriented.", "Neuro: awake, appropriate.",
                "Mentating well.")  # fmt: skip
    elif gcs >= 9:
        opts = (
            f"Drowsy, GCS {gcs:.0f}, follows commands intermittently.",
            "Lethargic but arousable to voice.",
            "Waxing/waning mental status, ?delirium.",
        )
    else:
        opts = (f"Obtunded, GCS {gcs:.0f}.", "Poorly responsive, withdraws to pain only.",
                f"Neuro: GCS {gcs:.0f}, not protecting airway well.")  # fmt: skip
    return _pick(u, opts)


def _ventilation(vent, fio2, spo2, u) -> str:
    if vent:
        peep = 5 + 2 * round(3 * (fio2 - 0.3))
        return _pick(u, (
            f"Intubated on AC, FiO2 {100 * fio2:.0f}%, PEEP {max(peep, 5)}.",
            f"Vent: FiO2 {fio2:.2f}, sats {spo2:.0f}%.",
            f"Remains on MV, FiO2 {100 * fio2:.0f}%.",
        ))  # fmt: skip
    if fio2 > 0.45:
        return _pick(
            u,
            (
                f"On HFNC {100 * fio2:.0f}%, SpO2 {spo2:.0f}%.",
                f"Increased O2 requirement, sats {spo2:.0f}% on high flow.",
            ),
        )
    return _pick(u, (f"On {1 + int(4 * fio2):d}L NC, SpO2 {spo2:.0f}%.", "Sats OK on room air.",
                     f"Resp: unlabored, sats {spo2:.0f}%."))  # fmt: skip


def _urine(uo4h, u) -> str:
    per_h = uo4h / 4
    if per_h < 20:
        opts = (f"Oliguric, UOP ~{per_h:.0f} cc/hr.", "Poor UOP overnight.",
                f"UO {uo4h:.0f} mL over 4h, low.")  # fmt: skip
    elif per_h < 50:
        opts = (f"UOP {per_h:.0f} mL/h.", f"Making some urine, ~{5 * round(per_h / 5):.0f} cc/h.")
    else:
        opts = ("Good UOP.", f"UOP adequate, {uo4h:.0f} mL/4h.", "Urine output robust.")
    return _pick(u, opts)


def _lactate(lac, prev, u) -> str:
    if prev is None or np.isnan(prev):
        return _pick(u, (f"Lactate {lac:.1f}.", f"Initial lactate {lac:.1f} mmol/L.",
                         f"Lac {lac:.1f}."))  # fmt: skip
    if lac > prev + 0.3:
        return _pick(u, (f"Lactate up {prev:.1f} -> {lac:.1f}.",
                         f"Lactate rising ({lac:.1f}, was {prev:.1f}).",
                         f"Worsening lactate {lac:.1f}."))  # fmt: skip
    if lac < prev - 0.3:
        return _pick(
            u,
            (
                f"Lactate clearing {prev:.1f} -> {lac:.1f}.",
                f"Lactate down to {lac:.1f}.",
                f"Lac trending down ({lac:.1f}).",
            ),
        )
    return _pick(u, (f"Lactate stable ~{lac:.1f}.", f"Lac unchanged at {lac:.1f}."))


def _fluids(in4h, balance, u) -> str:
    """IV fluid given in the previous block (NaN: nothing charted yet) and the net balance."""
    opts = []
    if np.isnan(in4h):
        pass
    elif in4h > 500:
        opts += [f"Received {in4h / 1000:.1f}L IVF in last 4h.", "s/p 1L LR bolus.",
                 "Got additional crystalloid bolus."]  # fmt: skip
    elif in4h > 100:
        opts += [f"IVF ~{in4h:.0f} mL last 4h.", "On mIVF."]
    elif in4h > 0:
        opts += [f"Minimal IVF (~{in4h:.0f} mL last 4h)."]
    else:
        opts += ["No IVF last 4h.", "Fluids held."]
    opts += [f"Net {'+' if balance >= 0 else '-'}{abs(balance) / 1000:.1f}L since admission."]
    return _pick(u, opts)


def _labs(x, u) -> str:
    parts = []
    if x[_I["Creatinine"]] > 1.5:
        parts.append(f"Cr {x[_I['Creatinine']]:.1f} (AKI)")
    if x[_I["Platelets_count"]] < 100:
        parts.append(f"plts {x[_I['Platelets_count']]:.0f}")
    if x[_I["WBC_count"]] > 15:
        parts.append(f"WBC {x[_I['WBC_count']]:.0f}")
    if x[_I["Total_bili"]] > 2:
        parts.append(f"Tbili {x[_I['Total_bili']]:.1f}")
    if x[_I["Arterial_pH"]] < 7.3:
        parts.append(f"pH {x[_I['Arterial_pH']]:.2f}")
    if not parts:
        return _pick(u, ("Labs unremarkable.", "AM labs reviewed, no major changes.", ""))
    head = _pick(u, ("Labs: ", "Notable labs: ", ""))
    return head + ", ".join(parts) + "."


def _temperature(t, u) -> str:
    if t >= 38.3:
        return _pick(u, (f"Febrile to {t:.1f}.", f"Tmax {t:.1f}C.", "Spiking fevers."))
    if t < 36.0:
        return _pick(u, (f"Hypothermic {t:.1f}C, bair hugger on.", f"Temp {t:.1f}."))
    return _pick(u, ("Afebrile.", f"Tmax {t:.1f}.", ""))


def _plan(policy_row, on_pressor: bool, u) -> str:
    """The team's intent in the true state; it titrates or weans only a pressor that is running."""
    fluid = policy_row.reshape(5, 5).sum(axis=1) @ np.arange(5)
    vaso = policy_row.reshape(5, 5).sum(axis=0) @ np.arange(5)
    parts = []
    if vaso >= 2.0 and on_pressor:
        parts.append(_pick(u, ("titrate pressors to MAP > 65", "uptitrate levo for MAP goal",
                               "continue norepi, add vaso if needed")))  # fmt: skip
    elif vaso >= 2.0:
        parts.append(_pick(u, ("start norepi for MAP > 65", "start pressors for MAP goal")))
    elif vaso >= 0.6 and on_pressor:
        parts.append(_pick(u, ("low-dose pressor support as needed", "wean levo as tolerated")))
    elif vaso >= 0.6:
        parts.append(_pick(u, ("low-dose pressor support as needed", "pressors if MAP < 65")))
    else:
        parts.append(_pick(u, ("no pressors planned", "monitor MAP, pressors if < 65")))
    if fluid >= 2.8:
        parts.append(_pick(u, ("additional 1L bolus", "aggressive fluid resuscitation",
                               "500 mL LR bolus x2")))  # fmt: skip
    elif fluid >= 1.5:
        parts.append(_pick(u, ("maintenance IVF", "judicious fluids", "consider small bolus")))
    else:
        parts.append(_pick(u, ("hold IVF", "fluid restrict, consider diuresis", "KVO only")))
    return _pick(u, ("Plan: ", "A/P: ", "Plan - ")) + "; ".join(parts) + "."


def _social(age, sofa, u, u2) -> str:
    dnr = u2 < 0.02 + 0.25 * max(0.0, (age - 70) / 25) + 0.15 * max(0.0, (sofa - 10) / 8)
    if dnr:
        return _pick(u, ("Code status: DNR/DNI, confirmed with HCP.",
                         "Goals of care discussed with family; DNR/DNI.",
                         "Family meeting held, pt is DNR."))  # fmt: skip
    return _pick(u, ("Full code.", "Family updated at bedside.", "Daughter updated by phone.",
                     "Family meeting held, remains full code.", ""))  # fmt: skip


def _abx(u) -> str:
    return _pick(u, ("On vanc/zosyn, cultures pending.", "Abx: meropenem.",
                     "Cont broad-spectrum abx.", "BCx NGTD.", "ID following.", ""))  # fmt: skip


# topic -> probability that it appears in a note (omissions are routine in real charting)
_TOPIC_P = {
    "hd": 0.9,
    "press": 0.75,
    "neuro": 0.6,
    "resp": 0.6,
    "uo": 0.55,
    "lac": 0.5,
    "fluid": 0.5,
    "labs": 0.35,
    "temp": 0.35,
    "abx": 0.25,
    "plan": 0.7,
    "social": 0.15,
}
_N_U = 2 * len(_TOPIC_P) + 6


def _one_note(x, u, present, vent, map_shift, prev_lac, policy_row, sofa, step, given) -> str:
    """Compose one note from a row's true clinical values, its random draws ``u`` and the doses
    ``given`` in the previous block (``(fluid mL/4h, vaso ug/kg/min)``, NaN when none charted)."""
    prev_fluid, prev_vaso = given
    topics = {
        "hd": lambda: _haemodynamics(x[_I["MeanBP"]] + map_shift, x[_I["HR"]], u[2]),
        "press": lambda: _pressors(prev_vaso, u[3]),
        "neuro": lambda: _mentation(x[_I["GCS"]], vent, u[4]),
        "resp": lambda: _ventilation(vent, x[_I["FiO2_1"]], x[_I["SpO2"]], u[5]),
        "uo": lambda: _urine(x[_I["output_4hourly"]], u[6]),
        "lac": lambda: _lactate(x[_I["Arterial_lactate"]], prev_lac, u[7]),
        "fluid": lambda: _fluids(prev_fluid, x[_I["cumulated_balance"]], u[8]),
        "labs": lambda: _labs(x, u[9]),
        "temp": lambda: _temperature(x[_I["Temp_C"]], u[10]),
        "abx": lambda: _abx(u[11]),
        "plan": lambda: _plan(policy_row, bool(prev_vaso > 0), u[12]),
        "social": lambda: _social(x[_I["age"]], sofa, u[13], u[14]),
    }
    sentences = [_pick(u[0], _HEADERS).format(day=1 + step // 6, hh=f"{u[1] * 24:02.0f}")]
    for keep, make in zip(present, topics.values(), strict=True):
        if keep and (sentence := make()):
            sentences.append(sentence)
    # some writers chart one long line, others one fragment per line
    return (" " if u[15] < 0.3 else "\n").join(sentences)


@dataclass(frozen=True)
class NoteDraws:
    """Every random draw of a batch of notes, taken before the text is composed (so the doses
    given can be drawn after them and the notes still quote those doses)."""

    u: np.ndarray  # (n, _N_U) wording
    present: np.ndarray  # (n, topics) which topics a note has
    filled: np.ndarray  # (n,) whether the step has a note
    minutes: np.ndarray  # (n,) minutes before the decision; NaN where no note
    contradict: np.ndarray  # (n,) haemodynamics sentence from a neighbouring category
    hd_shift: np.ndarray  # (n,) the MAP shift of a contradiction


def draw_notes(
    n: int,
    rng: np.random.Generator,
    *,
    note_fill: float = NOTE_FILL,
    contradiction_rate: float = 0.03,
) -> NoteDraws:
    """The random draws of ``n`` notes (see :func:`write_notes`)."""
    u = rng.random((n, _N_U))
    present = rng.random((n, len(_TOPIC_P))) < np.array(list(_TOPIC_P.values()))
    filled = rng.random(n) < note_fill
    minutes = np.where(filled, rng.uniform(5, 235, n), np.nan)
    contradict = rng.random(n) < contradiction_rate
    hd_shift = np.where(rng.random(n) < 0.5, -12.0, 12.0)
    return NoteDraws(u, present, filled, minutes, contradict, hd_shift)


def compose_notes(
    mdp: IcuSepsisMDP,
    states: np.ndarray,
    prev_states: np.ndarray,
    steps: np.ndarray,
    draws: NoteDraws,
    *,
    prev_fluid: np.ndarray | None = None,
    prev_vaso: np.ndarray | None = None,
) -> list[str]:
    """The text of each note from its draws, its true state and the doses given before it.

    ``prev_fluid`` / ``prev_vaso`` are the IV fluid (mL/4h) and vasopressor (ug/kg/min) given in
    the stay's previous block, NaN where there is none (first step); ``None`` means none is
    known for any row, and the notes then say nothing about doses given.
    """
    n = len(states)
    nan = np.full(n, np.nan)
    prev_fluid = nan if prev_fluid is None else np.asarray(prev_fluid, dtype=float)
    prev_vaso = nan if prev_vaso is None else np.asarray(prev_vaso, dtype=float)
    true_x = z_to_clinical(mdp.centers[states])
    has_prev = prev_states >= 0
    prev_lac = np.where(
        has_prev,
        z_to_clinical(mdp.centers[np.maximum(prev_states, 0)])[:, _I["Arterial_lactate"]],
        np.nan,
    )
    sofa = mdp.sofa[states]
    policy = mdp.expert_policy[states]
    notes: list[str] = []
    for i in range(n):
        if not draws.filled[i]:
            notes.append("")
            continue
        vent = bool(mdp.centers[states[i], _I["mechvent"]] + 0.5 > 0.5)
        map_shift = draws.hd_shift[i] if draws.contradict[i] else 0.0
        notes.append(
            _one_note(
                true_x[i],
                draws.u[i],
                draws.present[i],
                vent,
                map_shift,
                prev_lac[i],
                policy[i],
                sofa[i],
                int(steps[i]),
                (prev_fluid[i], prev_vaso[i]),
            )  # fmt: skip
        )
    return notes


def write_notes(
    mdp: IcuSepsisMDP,
    states: np.ndarray,
    prev_states: np.ndarray,
    steps: np.ndarray,
    rng: np.random.Generator,
    *,
    prev_fluid: np.ndarray | None = None,
    prev_vaso: np.ndarray | None = None,
    note_fill: float = NOTE_FILL,
    contradiction_rate: float = 0.03,
) -> tuple[list[str], np.ndarray]:
    """Write one note per row from the true state and the doses charted before it.

    Parameters
    ----------
    mdp : IcuSepsisMDP
    states, prev_states : ndarray of int
        The row's true state and the stay's previous true state (``-1`` at the first step).
    steps : ndarray of int
        Step index within the stay (for the hospital-day header).
    rng : numpy Generator
    prev_fluid, prev_vaso : ndarray of float, optional
        IV fluid (mL/4h) and vasopressor (ug/kg/min) given in the stay's previous block, NaN at
        the first step; without them the notes say nothing about doses given.
    note_fill : float
        Probability that a step has a note; the rest get ``""``.
    contradiction_rate : float
        Probability that the haemodynamics sentence describes a neighbouring category.

    Returns
    -------
    notes : list of str
    minutes_before : ndarray of float
        How many minutes before the decision time each note was charted (5..235); ``NaN``
        where the note is empty.
    """
    draws = draw_notes(len(states), rng, note_fill=note_fill,
                       contradiction_rate=contradiction_rate)  # fmt: skip
    notes = compose_notes(mdp, states, prev_states, steps, draws, prev_fluid=prev_fluid,
                          prev_vaso=prev_vaso)  # fmt: skip
    return notes, draws.minutes
