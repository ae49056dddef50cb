"""Console pages: thin views over safer.store, routed by clinical_ui/app.py."""
