"""SAFER clinician console (Streamlit): ``safer console`` runs ``clinical_ui/app.py``.

The console only displays and records: every read and write goes through :mod:`safer.store`,
which checks the signed-in user's role on every call.
"""
