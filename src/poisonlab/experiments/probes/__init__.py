"""The probe study: which trigger patterns a model memorises from the fewest poisoned rows."""
