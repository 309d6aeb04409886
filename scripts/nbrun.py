#!/usr/bin/env python3
"""Executes one Jupyter notebook headlessly with nbclient and saves its outputs.

Usage: python3 scripts/nbrun.py NOTEBOOK [--output OUT.ipynb] [--cwd DIR] [--kernel NAME]
                                         [--timeout SECONDS] [--summary SUMMARY.json]

Why not `jupyter nbconvert --execute`: the tslab kernel reports TypeScript errors and stack traces as
stderr *stream* outputs, not as `error` outputs, so nbconvert's failure message is empty. This driver runs
cell by cell and, on a failure, prints the failing cell's source and everything it wrote to stderr.

- The kernel spec is looked up in <project>/.jupyter/share/jupyter first (where `npm run kernel:install`
  registers tslab), then in Jupyter's usual places; the user's home is never written.
- The kernel runs with its working directory set to --cwd (default: the notebook's folder), so a copy
  written elsewhere (--output) still imports "tagi" exactly like the original does.
- The partially executed notebook is written even when a cell fails, for inspection.

Exit status: 0 all cells ran; 1 a cell failed; 2 bad arguments or unreadable notebook;
3 Jupyter/nbclient or the kernel spec is missing (the message says how to install it);
4 the kernel did not start or died.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROJECT_JUPYTER_PATH = os.path.join(ROOT, ".jupyter", "share", "jupyter")

INSTALL_HINT = (
    "Install Jupyter's headless parts and register the TypeScript kernel inside the project:\n"
    "  Debian/Ubuntu: sudo apt-get install jupyter-nbconvert python3-nbclient jupyter-client jupyter-core "
    "python3-ipython python3-ipykernel\n"
    "  elsewhere:     python3 -m pip install jupyter nbclient\n"
    "  then:          npm run kernel:install\n"
    "(set TAGI_JUPYTER_PYTHON=/path/to/python if Jupyter lives in another Python; see environment.md)"
)


def fail(code, msg, summary_path=None, summary=None):
    print(f"[nbrun] {msg}", file=sys.stderr)
    if summary_path and summary is not None:
        summary["ok"] = False
        summary["exitCode"] = code
        summary.setdefault("error", {"message": msg})
        write_json(summary_path, summary)
    sys.exit(code)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def stream_text(cell, names=("stderr",)):
    """The text a cell wrote to the given streams, plus any `error` outputs (ename, evalue, traceback)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") in names:
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}\n")
            parts.extend(line + "\n" for line in out.get("traceback", []))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebook")
    ap.add_argument("--output", help="where to write the executed notebook (default: in place)")
    ap.add_argument("--cwd", help="kernel working directory (default: the notebook's folder)")
    ap.add_argument("--kernel", help="kernel name (default: the notebook's kernelspec, else tslab)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    ap.add_argument("--startup-timeout", type=float, default=120, help="seconds for the kernel to start")
    ap.add_argument("--summary", help="write a JSON summary (timings, failing cell) to this file")
    args = ap.parse_args()

    notebook = os.path.abspath(args.notebook)
    output = os.path.abspath(args.output) if args.output else notebook
    cwd = os.path.abspath(args.cwd) if args.cwd else os.path.dirname(notebook)
    summary = {
        "notebook": notebook,
        "output": output,
        "cwd": cwd,
        "python": sys.executable,
        "ok": False,
        "exitCode": None,
        "kernel": None,
        "kernelStartSeconds": None,
        "totalSeconds": None,
        "cells": [],
    }

    try:
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as e:
        fail(3, f"Jupyter is not installed in {sys.executable} ({e}).\n{INSTALL_HINT}", args.summary, summary)

    # The project's kernel registry first; Jupyter's own places stay searchable after it.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in [PROJECT_JUPYTER_PATH, os.environ.get("JUPYTER_PATH", "")] if p
    )

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as e:  # missing file, invalid JSON, invalid notebook
        fail(2, f"cannot read {notebook}: {e}", args.summary, summary)

    kernel = args.kernel or nb.metadata.get("kernelspec", {}).get("name") or "tslab"
    summary["kernel"] = kernel
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        fail(
            3,
            f"Jupyter kernel '{kernel}' is not registered (looked in {PROJECT_JUPYTER_PATH} and Jupyter's "
            f"default paths). Jupyter itself is installed ({sys.executable}): register the kernel with "
            "npm run kernel:install (after npm ci).",
            args.summary,
            summary,
        )
    launcher = spec.argv[0] if spec.argv else ""
    if os.path.isabs(launcher) and not os.path.exists(launcher):
        fail(
            3,
            f"Jupyter kernel '{kernel}' ({spec.resource_dir}) starts {launcher}, which does not exist "
            "(registered from another checkout, or node_modules was removed). Re-register it: "
            "npm ci && npm run kernel:install",
            args.summary,
            summary,
        )
    summary["kernelSpec"] = spec.resource_dir

    client = NotebookClient(
        nb,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        kernel_name=kernel,
        resources={"metadata": {"path": cwd}},
        record_timing=True,
    )
    client.reset_execution_trackers()

    t_all = time.perf_counter()
    failure = None
    label = os.path.relpath(notebook)
    try:
        t0 = time.perf_counter()
        with client.setup_kernel():
            summary["kernelStartSeconds"] = round(time.perf_counter() - t0, 3)
            assert client.kc is not None
            info = client.wait_for_reply(client.kc.kernel_info())
            if info is not None:
                nb.metadata["language_info"] = info["content"].get("language_info", {})
            code_index = 0
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                code_index += 1
                t_cell = time.perf_counter()
                entry = {"index": index, "codeCell": code_index, "seconds": None, "status": "ok"}
                summary["cells"].append(entry)
                try:
                    # tslab leaves execution_count empty: number the cells like Jupyter's "run all" does.
                    client.execute_cell(cell, index, execution_count=code_index)
                except CellTimeoutError:
                    entry["status"] = "timeout"
                    failure = (index, code_index, f"timed out after {args.timeout:g} s")
                except DeadKernelError:
                    entry["status"] = "dead-kernel"
                    failure = (index, code_index, "the kernel died")
                except CellExecutionError:
                    entry["status"] = "error"
                    failure = (index, code_index, "raised an error")
                finally:
                    entry["seconds"] = round(time.perf_counter() - t_cell, 3)
                if failure is None and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                    entry["status"] = "error"
                    failure = (index, code_index, "produced an error output")
                if failure is not None:
                    break
    except (RuntimeError, TimeoutError, DeadKernelError) as e:
        summary["totalSeconds"] = round(time.perf_counter() - t_all, 3)
        nbformat.write(nb, output)
        fail(
            4,
            f"{label}: kernel '{kernel}' did not start or stopped ({type(e).__name__}: {e}). "
            f"Its launcher: {' '.join(spec.argv)}. Anything it printed is above.",
            args.summary,
            summary,
        )
    summary["totalSeconds"] = round(time.perf_counter() - t_all, 3)
    nbformat.write(nb, output)

    if failure is not None:
        index, code_index, what = failure
        cell = nb.cells[index]
        stderr = stream_text(cell).rstrip() or "(nothing on stderr)"
        msg = (
            f"{label}: code cell {code_index} (cell {index + 1} of {len(nb.cells)}) {what}.\n"
            f"--- cell source ---\n{cell.source.rstrip()}\n"
            f"--- cell stderr / error output ---\n{stderr}\n"
            f"--- (partially executed notebook: {output}) ---"
        )
        summary["error"] = {"cell": index, "codeCell": code_index, "what": what, "stderr": stderr, "message": msg}
        fail(1, msg, args.summary, summary)

    summary["ok"] = True
    summary["exitCode"] = 0
    if args.summary:
        write_json(args.summary, summary)
    print(
        f"[nbrun] {label}: {len(summary['cells'])} code cells ok; kernel start {summary['kernelStartSeconds']:.1f} s, "
        f"total {summary['totalSeconds']:.1f} s -> {os.path.relpath(output)}"
    )


if __name__ == "__main__":
    main()
