"""Ship's Python kernel: IPython's InteractiveShell, driven by Ship over a
socket (runtimes/ship/src/kernel.rs starts it and holds the other end).

Why not ipykernel: its start costs about 2.5x the CPU of this one (ZeroMQ,
jupyter_client, tornado and debugpy are imported by every kernel), and none of
it is needed by a client that runs one cell at a time. The behaviour users see
is ipykernel's (same shell class hierarchy, display hooks, tracebacks, cell
file names, `!cmd`, magics, inline matplotlib); the measurements are in
the module documentation of runtimes/ship/src/kernel.rs.

Protocol. fd 3 is a unix stream socket. Ship writes one JSON object per line,
`{"id": ..., "code": ..., "silent": bool}`; the kernel answers with JSON lines
`{"msg_type": ..., "id": ..., "content": {...}}` whose types and contents
follow the Jupyter messages of the same name: `display_data`,
`execute_result`, `error`, then exactly one `execute_reply` per request. The
first line the kernel sends is `{"msg_type": "ready"}`. Printed output is not
on the socket: fds 1 and 2 are one pipe that Ship reads; everything written
there before a message is flushed before that message is sent, so Ship can
keep the order of text and results.

Interrupts are a plain SIGINT (Ship signals the process group): it raises
KeyboardInterrupt in a running cell and is ignored while idle, as in
ipykernel.
"""

import gc

# Imports create many objects and no garbage; collecting during start-up is
# wasted CPU (measured: ~7 % of the start).
gc.disable()

import builtins  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import types  # noqa: E402

PROTOCOL_FD = 3

# --- start-up without the parts a kernel never uses ---------------------------
# `import IPython` imports IPython.terminal.embed (prompt_toolkit, ~30 % of
# IPython's import time) and the completer imports jedi (~25 %); neither is
# used here. Both are stood in for while the shell is built and released
# afterwards, so user code that imports them gets the real modules.
_standins = {}


def _stand_in(name, module):
    if name not in sys.modules:
        sys.modules[name] = module
        _standins[name] = module


def _embed(**kwargs):
    from IPython.terminal.embed import embed

    return embed(**kwargs)


_embed_module = types.ModuleType("IPython.terminal.embed")
_embed_module.embed = _embed
_stand_in("IPython.terminal.embed", _embed_module)
_stand_in("jedi", None)  # None in sys.modules: `import jedi` raises ImportError

from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS  # noqa: E402
from IPython.core.displayhook import DisplayHook  # noqa: E402
from IPython.core.displaypub import DisplayPublisher  # noqa: E402
from IPython.core.error import StdinNotImplementedError, UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.process import system  # noqa: E402
from traitlets.config import Config  # noqa: E402

# --- the wire ------------------------------------------------------------------
_sock = socket.socket(fileno=PROTOCOL_FD)
os.set_inheritable(PROTOCOL_FD, False)  # not for `!cmd` and friends
_send_lock = threading.Lock()
_current = None  # id of the request being executed


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def send(msg_type, content=None, request_id=None):
    """One message; printed output so far goes first (see the module doc)."""
    _flush()
    line = json.dumps({"msg_type": msg_type, "id": request_id, "content": content or {}}, default=repr) + "\n"
    # A SIGINT must not cut a message in half: blocked in this thread for the
    # write, it is delivered (as KeyboardInterrupt) right after.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with _send_lock:
            _sock.sendall(line.encode("utf-8", "surrogatepass"))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- the shell -----------------------------------------------------------------


class ShipDisplayPublisher(DisplayPublisher):
    """display() and inline figures (ipykernel's ZMQDisplayPublisher)."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        send("update_display_data" if update else "display_data", content, _current)

    def clear_output(self, wait=False):
        send("clear_output", {"wait": wait}, _current)


class ShipDisplayHook(DisplayHook):
    """A cell's value (ipykernel's ZMQShellDisplayHook): sent, not printed."""

    def start_displayhook(self):
        self._data = None

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._data = {"data": format_dict, "metadata": md_dict or {}}

    def finish_displayhook(self):
        if self._data is not None:
            self._data["execution_count"] = self.prompt_count
            send("execute_result", self._data, _current)
        self._data = None


def _no_stdin(prompt="", *args, **kwargs):
    raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")


class ShipShell(InteractiveShell):
    """InteractiveShell with ipykernel's ZMQInteractiveShell behaviour."""

    displayhook_class = ShipDisplayHook
    display_pub_class = ShipDisplayPublisher

    def init_environment(self):
        # As ipykernel: coloured `ls` on BSDs, and no pager can work here.
        os.environ.update(TERM="xterm-color", CLICOLOR="1", PAGER="cat", GIT_PAGER="cat")

    def init_virtualenv(self):
        pass

    def init_hooks(self):
        super().init_hooks()
        self.set_hook("show_in_pager", _page_as_text, 99)

    def enable_gui(self, gui=None):
        # Only inline figures: there is no GUI event loop in a sandbox.
        if gui not in (None, "inline"):
            raise UsageError(f"GUI event loop '{gui}' is not available here; use `%matplotlib inline`.")
        self.active_eventloop = gui

    def ask_exit(self):
        # exit()/quit(): like ipykernel, the kernel process ends after this
        # cell (Ship starts a new one on the next call).
        self.exit_now = True

    def set_next_input(self, text, replace=False):
        pass

    def run_cell(self, *args, **kwargs):
        self._last_traceback = None
        return super().run_cell(*args, **kwargs)

    def _showtraceback(self, etype, evalue, stb):
        self._last_traceback = stb
        send("error", {"ename": str(etype.__name__), "evalue": str(evalue), "traceback": stb}, _current)

    def system_piped(self, cmd):
        # ipykernel's: no background jobs, the exit status in `_exit_code`.
        if cmd.rstrip().endswith("&"):
            raise OSError("Background processes not supported.")
        self.user_ns["_exit_code"] = system(self.var_expand(cmd, depth=1))

    system = system_piped


def _page_as_text(self, data, start=0, screen_lines=0, pager_cmd=None):
    """`obj?` and other paged output: printed (no pager can run here)."""
    text = data.get("text/plain", "") if isinstance(data, dict) else str(data)
    print(text.split("\n", start)[-1] if start else text)


def _cell_file_names():
    """ipykernel's cell file names (/tmp/ipykernel_<pid>/<hash>.py), so
    tracebacks and `inspect.getsource` read exactly as with ipykernel. Its
    compiler module is loaded on its own: `import ipykernel` would import
    jupyter_client and ZeroMQ."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ipykernel")
        path = os.path.join(spec.submodule_search_locations[0], "compiler.py")
        mod_spec = importlib.util.spec_from_file_location("_ship_ipykernel_compiler", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module.XCachingCompiler
    except Exception:
        return None


def _run_startup_files(shell):
    """$PYTHONSTARTUP and profile startup files, as ipykernel runs them."""
    import glob

    def run(path):
        try:
            if path.endswith(".ipy"):
                shell.safe_execfile_ipy(path)
            else:
                shell.safe_execfile(path, shell.user_ns, raise_exceptions=True)
        except Exception:
            shell.showtraceback()

    startup = os.environ.get("PYTHONSTARTUP")
    if startup:
        run(startup)
    files = []
    for d in [shell.profile_dir.startup_dir] + [os.path.join(p, "startup") for p in [*ENV_CONFIG_DIRS, *SYSTEM_CONFIG_DIRS]][::-1]:
        files += glob.glob(os.path.join(d, "*.py")) + glob.glob(os.path.join(d, "*.ipy"))
    for f in sorted(files):
        run(f)
    shell.user_ns_hidden.update(shell.user_ns)


def build_shell():
    # As `python -m ipykernel_launcher`: the start directory first in the path,
    # no script directory (this file's), argv without kernel arguments.
    sys.path[0] = os.getcwd()
    if "" not in sys.path:
        sys.path.insert(1, "")
    sys.argv = [""]
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, errors="backslashreplace")

    config = Config()
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.autoindent = False
    config.HistoryManager.hist_file = ":memory:"
    compiler = _cell_file_names()
    kwargs = {"compiler_class": compiler} if compiler is not None else {}
    shell = ShipShell.instance(config=config, **kwargs)
    shell.extension_manager.load_extension("storemagic")
    builtins.input = _no_stdin
    import getpass

    getpass.getpass = _no_stdin
    _run_startup_files(shell)

    for name, module in _standins.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    return shell


def execute(shell, request):
    global _current
    _current = request.get("id")
    silent = bool(request.get("silent"))
    result = None
    try:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            result = shell.run_cell(request.get("code", ""), store_history=not silent, silent=silent)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        # Landed outside the cell's own code (run_cell reports those itself).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        result = None
    if result is None:
        tb = ["KeyboardInterrupt"]
        send("error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": tb}, _current)
        reply = {"status": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": tb}
    elif result.success:
        reply = {"status": "ok"}
    else:
        err = result.error_before_exec if result.error_before_exec is not None else result.error_in_exec
        reply = {"status": "error", "ename": type(err).__name__, "evalue": str(err), "traceback": shell._last_traceback or []}
    reply["execution_count"] = shell.execution_count - 1
    if shell.exit_now:
        # As ipykernel tells its client; Ship waits for this process to end.
        reply["payload"] = [{"source": "ask_exit", "keepkernel": False}]
    send("execute_reply", reply, _current)
    _current = None


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shell = build_shell()
    # What start-up built lives on; later collections need not scan it.
    gc.enable()
    gc.freeze()
    send("ready", {"pid": os.getpid()})
    requests = _sock.makefile("rb")
    while not shell.exit_now:
        try:
            line = requests.readline()
            if not line:
                break  # Ship is gone
            if line.strip():
                execute(shell, json.loads(line))
        except KeyboardInterrupt:
            # A late interrupt, between cells: nothing to stop.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    _flush()
    # Run atexit handlers (the shell's and the user's), as a kernel ending
    # through exit() does; then leave without waiting on user threads.
    import atexit

    atexit._run_exitfuncs()
    _flush()
    os._exit(0)


if __name__ == "__main__":
    main()
