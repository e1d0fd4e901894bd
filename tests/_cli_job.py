"""Run one ``plm`` command in a fresh process, optionally crashing it like a real kill.

Usage: python _cli_job.py [--kill-after-checkpoint N] -- PLM ARGUMENTS...

With ``--kill-after-checkpoint N`` the process sends itself SIGKILL right after checkpoint-N is
written (nothing after it is flushed or cleaned up), as a crash or an OOM kill would.
One thread, so that runs compare bit for bit.
"""

import os
import signal
import sys

import torch


def main() -> int:
    separator = sys.argv.index("--")
    options, argv = sys.argv[1:separator], sys.argv[separator + 1:]
    if options[:1] == ["--kill-after-checkpoint"]:
        from plmkit.training import checkpoint

        kill_at = int(options[1])
        save = checkpoint.save_checkpoint

        def save_then_die(output_dir, step, *args, **kwargs):
            target = save(output_dir, step, *args, **kwargs)
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return target

        checkpoint.save_checkpoint = save_then_die
    from plmkit.cli import main as plm

    return plm(argv)


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
