"""Drives `ctl exec -it` through a real pseudo-terminal, as a user at a
shell would: types commands, reads the remote shell's echo and output, and
exits with a code. Usage: exec_tty.py CTL SERVERS POD. Prints what the
terminal showed; exits with ctl's exit code."""
import os
import pty
import select
import sys
import time


def main(ctl, servers, pod):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(ctl, [ctl, "--server", servers, "exec", "-it", pod, "--", "sh"])
    seen = b""

    def read_until(marker, timeout=20):
        nonlocal seen
        deadline = time.time() + timeout
        while marker not in seen:
            left = deadline - time.time()
            if left <= 0:
                raise SystemExit("timed out waiting for %r; saw %r" % (marker, seen))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk

    # The remote shell runs in a terminal: it prompts and echoes.
    os.write(fd, b"tty && echo interactive-$((40+2))\n")
    read_until(b"interactive-42")
    os.write(fd, b"exit 5\n")
    _, status = os.waitpid(pid, 0)
    try:
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    sys.stdout.write(seen.decode(errors="replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main(*sys.argv[1:4])
