"""`manage.py import_job_run ID`: take up import job ID and import its file, in this process.

The import worker of a serving process (transfer/jobs.py) runs each job so,
in a child process of its own whose CPU priority it lowers by
CHAT_IMPORT_NICENESS as it starts it. By hand, it imports a job that is
waiting, or one left running by a process that died (after
`jobs.ORPHANED_AFTER`); `--niceness` lowers its priority first.
"""

import os

from django.core.management.base import BaseCommand, CommandParser

from transfer import jobs


class Command(BaseCommand):
    help = "Take up an import job (waiting, or left by a dead process) and import its file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", type=int, help="the ImportJob's id (its database primary key)")
        parser.add_argument(
            "--niceness",
            type=int,
            default=0,
            help="lower this process's CPU priority by this much first (os.nice; 0 to 19)",
        )

    def handle(self, *args, job_id: int, niceness: int = 0, **options) -> None:
        if niceness > 0:
            os.nice(niceness)
        job = jobs.import_job_run(job_id=job_id)
        self.stdout.write(f"Import job {job.pk}: {job.status}, {job.done} of {job.total} conversations.")
