"""The NSL-KDD schema: column names, column kinds and the attack taxonomy.

Everything here is plain data so that every other module (reader, encoder,
reports) agrees on one definition. The source of truth for the columns is the
data set's README (nsl-kdd/README.md in the BARENET_DATA folder) and Tavallaee et al.,
"A Detailed Analysis of the KDD CUP 99 Data Set" (CISDA 2009).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

# The 41 KDD'99 connection features, in file order.
FEATURE_COLUMNS: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes",
    "land", "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in",
    "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds",
    "is_host_login", "is_guest_login", "count", "srv_count", "serror_rate",
    "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate", "dst_host_srv_serror_rate", "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)

# The two trailing columns of the NSL-KDD files (absent in files to be scored).
LABEL_COLUMN = "attack"
DIFFICULTY_COLUMN = "difficulty"

CATEGORICAL: tuple[str, ...] = ("protocol_type", "service", "flag")

# Every non-categorical column, in file order (38 of them).
NUMERIC_COLUMNS: tuple[str, ...] = tuple(
    c for c in FEATURE_COLUMNS if c not in CATEGORICAL
)

# Counts, byte totals and durations. In KDDTrain+ they range over several
# orders of magnitude (src_bytes up to 1.4e9, num_root up to 7468, count up to
# 511) with most values at 0, so the encoder applies log1p before
# standardising; otherwise a handful of huge flows would dominate the scale.
# su_attempted is documented as a flag but takes the value 2 in the data, so it
# is treated as a small count. num_outbound_cmds is always 0 in NSL-KDD but is
# a count by definition; the encoder's constant-column rule maps it to 0.
LOG1P_COLUMNS: tuple[str, ...] = (
    "duration", "src_bytes", "dst_bytes", "wrong_fragment", "urgent", "hot",
    "num_failed_logins", "num_compromised", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files",
    "num_outbound_cmds", "count", "srv_count", "dst_host_count",
    "dst_host_srv_count",
)

# 0/1 indicators: used as they are (then standardised like every column).
BINARY_COLUMNS: tuple[str, ...] = (
    "land", "logged_in", "root_shell", "is_host_login", "is_guest_login",
)

# Fractions in [0, 1] computed over a time or connection window.
RATE_COLUMNS: tuple[str, ...] = tuple(c for c in NUMERIC_COLUMNS if c.endswith("_rate"))

# Every numeric column is a count, a byte total, a duration, a flag or a rate,
# so a negative value can only be an exporter sentinel (e.g. -1 for "unknown")
# and is treated as invalid by the encoder.
NON_NEGATIVE_COLUMNS: tuple[str, ...] = NUMERIC_COLUMNS

TASKS: tuple[str, ...] = ("binary", "5class", "attack")
CATEGORIES: tuple[str, ...] = ("normal", "DoS", "Probe", "R2L", "U2R")

# Attack names that appear only in KDDTest+/KDDTest-21 (README: 17 types, 3,750 records).
TEST_ONLY_ATTACKS: frozenset[str] = frozenset({
    "apache2", "httptunnel", "mailbomb", "mscan", "named", "processtable", "ps",
    "saint", "sendmail", "snmpgetattack", "snmpguess", "sqlattack", "udpstorm",
    "worm", "xlock", "xsnoop", "xterm",
})

_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "normal": ("normal",),
    # Denial of service: exhausting a host or service.
    "DoS": ("back", "land", "neptune", "pod", "smurf", "teardrop",
            "apache2", "mailbomb", "processtable", "udpstorm"),
    # Probing: scanning for hosts, ports and weaknesses.
    "Probe": ("ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"),
    # Remote to local: gaining access to a host from outside.
    # httptunnel is filed under U2R by some papers; R2L is the mapping that
    # reproduces the README's KDDTest+ counts (R2L 2,887, U2R 67).
    "R2L": ("ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy",
            "warezclient", "warezmaster", "httptunnel", "named", "sendmail",
            "snmpgetattack", "snmpguess", "worm", "xlock", "xsnoop"),
    # User to root: a local user escalating to root.
    "U2R": ("buffer_overflow", "loadmodule", "perl", "rootkit",
            "ps", "sqlattack", "xterm"),
}

# attack name -> category; read-only so no caller can silently change the taxonomy.
ATTACK_CATEGORY: MappingProxyType = MappingProxyType(
    {name: cat for cat, names in _BY_CATEGORY.items() for name in names}
)

TRAIN_ATTACKS: frozenset[str] = frozenset(ATTACK_CATEGORY) - TEST_ONLY_ATTACKS - {"normal"}


def labels_for_task(attack_names, task: str) -> np.ndarray:
    """Turn raw attack names into the target labels of one task.

    task="binary" -> "normal" / "attack"; task="5class" -> one of CATEGORIES;
    task="attack" -> the attack names unchanged. Returns a NumPy str array.
    In "5class" an attack name missing from ATTACK_CATEGORY raises ValueError
    naming it, because guessing a category would corrupt the evaluation.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    names = np.asarray(attack_names, dtype=str)
    if task == "attack":
        return names.copy()
    if task == "binary":
        return np.where(names == "normal", "normal", "attack")
    # Map each distinct name once, then broadcast back with the inverse index.
    uniq, inverse = np.unique(names, return_inverse=True)
    unknown = sorted(str(u) for u in uniq if u not in ATTACK_CATEGORY)
    if unknown:
        raise ValueError(
            f"attack names with no 5-class category: {unknown}; "
            "add them to nids_triage.schema.ATTACK_CATEGORY"
        )
    mapped = np.array([ATTACK_CATEGORY[str(u)] for u in uniq], dtype=str)
    return mapped[inverse.reshape(names.shape)]
