"""poisonlab: study and defend against data poisoning of LLM preference data.

The stages follow the data's path; each is importable on its own::

    from poisonlab.data import load_pairs                 # data
    from poisonlab.attacks import poison_dataset          # selection + injection
    from poisonlab.training import train_dpo              # LoRA DPO
    from poisonlab.evaluation import evaluate_preferences # clean accuracy, backdoor success
    from poisonlab.experiments import run_experiment      # the whole chain from one config
"""

__version__ = "0.1.0"
