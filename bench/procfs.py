"""What a process has used, read from Linux's /proc (proc(5)): its status fields and its CPU time."""

import os
from pathlib import Path


def proc_status(pid: int) -> dict[str, str]:
    """Return /proc/PID/status as {field: value} (e.g. "VmRSS": "  170356 kB", "VmHWM": peak RSS)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds process PID has used (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
