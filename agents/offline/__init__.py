"""Offline RL on D4RL-format data: Decision Mamba, Decision Transformer and BC.

Entry points: ``agents.offline.trainer.train_offline(cfg, dataset)`` (training with periodic evaluation),
``agents.offline.trainer.evaluate_checkpoint(cfg, checkpoint)``, ``agents.offline.scores.normalised_score``.
Configs: ``agents.offline.config.OfflineConfig``.
"""
