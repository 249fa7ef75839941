"""SAC behaviour policies and D4RL-style dataset collection.

Entry points: ``agents.sac.sac.train_sac(env, total_steps, cfg)``, ``agents.sac.collect.collect_datasets(cfg)``.
Configs: ``agents.sac.config.SACConfig``, ``agents.sac.config.CollectConfig``.
"""
