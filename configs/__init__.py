"""The preset YAML files (``agent/``, ``env/``, ``size/``, ``defaults.yaml``, and ``world_models.yaml``: the world-model presets and sizes), installed as the package data of
``ssmrl.configs`` (setup.py maps this folder there), so a non-editable install finds them too."""
