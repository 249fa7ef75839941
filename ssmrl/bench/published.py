"""Published Atari100k scores (docs/references.md#published-atari100k-scores; sources: IRIS/DIAMOND
``results/data/*.json``, STORM ``results/storm.json``, DreamerV3's 2023 paper table). Shown beside our runs, marked as
published, never re-run."""
from __future__ import annotations

_GAMES = ("Alien Amidar Assault Asterix BankHeist BattleZone Boxing Breakout ChopperCommand CrazyClimber DemonAttack "
          "Freeway Frostbite Gopher Hero Jamesbond Kangaroo Krull KungFuMaster MsPacman Pong PrivateEye Qbert "
          "RoadRunner Seaquest UpNDown").split()

_COLUMNS = {
    "IRIS": (420.0, 143.0, 1524, 853.6, 53.1, 13074, 70.1, 83.7, 1565, 59324, 2034, 31.1, 259.1, 2236, 7037, 462.7,
             838.2, 6616, 21760, 999.1, 14.6, 100.0, 745.7, 9615, 661.3, 3546),
    "STORM": (983.6, 204.8, 801.0, 1028, 641.2, 13540, 79.7, 15.9, 1888, 66776, 164.6, 0.0, 1316, 8240, 11044, 509.0,
              4208, 8413, 26182, 2673, 11.3, 7781, 4522, 17564, 525.2, 7985),
    "DreamerV3": (959.4, 139.1, 705.6, 932.5, 648.7, 12250, 78.0, 31.1, 410.0, 97190, 303.3, 0.0, 909.4, 3730, 11161,
                  444.6, 4098, 7782, 21420, 1327, 18.4, 881.6, 3405, 15565, 618.0, 7567),
    "DIAMOND": (744.1, 225.8, 1526, 3698, 19.7, 4702, 86.9, 132.5, 1370, 99168, 288.1, 33.3, 274.1, 5898, 5622, 427.4,
                5382, 8610, 18714, 1958, 20.4, 114.3, 4499, 20673, 551.2, 3856),
}

ATARI100K: dict[str, dict[str, float]] = {agent: dict(zip(_GAMES, map(float, col))) for agent, col in _COLUMNS.items()}
