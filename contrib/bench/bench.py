#!/usr/bin/env python3
"""Stapler benchmark driver (see run.sh): PKI generation, a local responder, measurements.

Every figure comes from public tools: /usr/bin/time -v for --one-off runs, /proc/PID/status
and /proc/PID/stat for the daemon. Several runs per size; the table shows medians.
"""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WORK = "/tmp/stapler-bench"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# PKI: one CA, one leaf key and CSR, N certificates signed by `openssl ca` in parallel chunks


def make_pki(n, port):
    root = f"{WORK}/pki-{n}-{port}"
    if os.path.exists(f"{root}/complete"):
        return root
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(f"{root}/certs")
    started = time.monotonic()
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *curve, "-keyout", f"{root}/ca.key", "-out", f"{root}/ca.pem",
         "-subj", "/CN=Stapler Bench CA", "-days", "60"])
    run(["openssl", "req", "-new", *curve, "-keyout", f"{root}/leaf.key", "-out", f"{root}/leaf.csr",
         "-subj", "/CN=bench.test"])
    chunks = max(1, min(8, n // 1000))
    sizes = [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]
    procs = []
    for i, size in enumerate(sizes):
        d = f"{root}/chunk{i}"
        os.makedirs(f"{d}/issued")
        open(f"{d}/index.txt", "w").close()
        with open(f"{d}/serial", "w") as f:
            f.write(f"{(i + 1) * 0x10000000:X}\n")  # an even number of hex digits
        with open(f"{d}/ca.cnf", "w") as f:
            f.write(f"""[ca]
default_ca = c
[c]
database = {d}/index.txt
new_certs_dir = {d}/issued
serial = {d}/serial
default_md = sha256
policy = p
unique_subject = no
default_days = 30
[p]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}/
""")
        procs.append(subprocess.Popen(
            ["openssl", "ca", "-batch", "-config", f"{d}/ca.cnf", "-cert", f"{root}/ca.pem", "-keyfile",
             f"{root}/ca.key", "-extensions", "leaf", "-notext", "-outdir", f"{d}/issued", "-infiles"]
            + [f"{root}/leaf.csr"] * size, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if len(procs) >= os.cpu_count():
            procs.pop(0).wait()
    for p in procs:
        p.wait()
    ca = open(f"{root}/ca.pem").read()
    key = open(f"{root}/leaf.key").read()
    # Without this the responder refuses an index where many certificates share a subject.
    with open(f"{root}/index.txt.attr", "w") as attr:
        attr.write("unique_subject = no\n")
    with open(f"{root}/index.txt", "w") as index:
        for i in range(chunks):
            d = f"{root}/chunk{i}"
            index.write(open(f"{d}/index.txt").read())
            for name in os.listdir(f"{d}/issued"):
                with open(f"{d}/issued/{name}") as cert, open(f"{root}/certs/site-{name}", "w") as out:
                    out.write(cert.read() + ca + key)
    count = len(os.listdir(f"{root}/certs"))
    if count != n:
        sys.exit(f"generated {count} certificates, wanted {n}")
    open(f"{root}/complete", "w").close()
    print(f"  generated {n} certificates in {time.monotonic() - started:.1f} s", flush=True)
    return root


# ---------------------------------------------------------------------------------------
# Responder: openssl ocsp, signing each answer


def ocsp_request(root):
    """A DER OCSP request for the first certificate, made by the openssl CLI."""
    cert = os.path.join(f"{root}/certs", sorted(n for n in os.listdir(f"{root}/certs") if n.endswith(".pem"))[0])
    return subprocess.run(["openssl", "ocsp", "-issuer", f"{root}/ca.pem", "-cert", cert, "-no_nonce",
                           "-reqout", "/dev/stdout"], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout


def post(port, request):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("POST", "/", request, {"Content-Type": "application/ocsp-request"})
        return c.getresponse().read()
    finally:
        c.close()


class Responder:
    def __init__(self, root, port):
        self.port = port
        self.log = open(f"{root}/responder-{port}.log", "w")
        # One process: `-multi` on OpenSSL 3.0.x sometimes never listens. Its own process
        # group, so nothing it leaves behind survives the run.
        self.proc = subprocess.Popen(
            ["openssl", "ocsp", "-index", f"{root}/index.txt", "-port", str(port), "-rsigner", f"{root}/ca.pem",
             "-rkey", f"{root}/ca.key", "-CA", f"{root}/ca.pem", "-ndays", "1"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        # Ready when it answers a real request: a bare probe connection that sends nothing
        # makes an openssl ocsp worker spin.
        request = ocsp_request(root)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                post(port, request)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit("responder did not start")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def responder_rate(root, port, seconds=3.0, threads=8):
    """Requests per second the responder answers on its own (POST, new connection each)."""
    request = ocsp_request(root)
    done = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        while time.monotonic() < stop:
            post(port, request)
            with lock:
                done[0] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0] / seconds


# ---------------------------------------------------------------------------------------
# Measurements


def clear_staples(root):
    for entry in os.scandir(f"{root}/certs"):
        if entry.name.endswith(".ocsp"):
            os.unlink(entry.path)


def staple_count(root):
    return sum(1 for e in os.scandir(f"{root}/certs") if e.name.endswith(".ocsp"))


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def kib(value):
    return int(value.split()[0])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLOCK_TICKS


def one_off(binary, root, threads):
    clear_staples(root)
    out = subprocess.run(["/usr/bin/time", "-v", binary, "--one-off", "-q", "-t", str(threads), f"{root}/certs"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"stapler --one-off exited {out.returncode}:\n{out.stderr[-2000:]}")
    t = out.stderr

    def field(name):
        return re.search(re.escape(name) + r":\s*(.+)", t).group(1).strip()

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    seconds = float(wall[-1]) + 60 * float(wall[-2]) + (3600 * float(wall[-3]) if len(wall) > 2 else 0)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {"wall": seconds, "cpu": cpu, "peak_kib": int(field("Maximum resident set size (kbytes)")),
            "staples": staple_count(root)}


def daemon(binary, root, threads, n, idle_seconds):
    clear_staples(root)
    started = time.monotonic()
    p = subprocess.Popen([binary, "-q", "-t", str(threads), "-r", "3600", f"{root}/certs"])
    try:
        while staple_count(root) < n:
            if p.poll() is not None:
                sys.exit(f"daemon exited {p.returncode}")
            if time.monotonic() - started > 600:
                sys.exit("daemon did not staple everything in 10 minutes")
            time.sleep(0.1)
        wall = time.monotonic() - started
        cpu = cpu_seconds(p.pid)
        time.sleep(2)  # let the last pushes and frees settle
        status = proc_status(p.pid)
        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
        switches = int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
        time.sleep(idle_seconds)
        after = proc_status(p.pid)
        wakeups = int(after["voluntary_ctxt_switches"]) + int(after["nonvoluntary_ctxt_switches"]) - switches
        return {"wall": wall, "cpu": cpu, "idle_kib": kib(after["VmRSS"]), "peak_kib": kib(after["VmHWM"]),
                "anon_kib": kib(after["RssAnon"]), "file_kib": kib(after["RssFile"]),
                "threads": int(after["Threads"]), "fds": fds, "wakeups": wakeups}
    finally:
        p.terminate()
        p.wait()


def rescan_cost(binary, root, seconds=20, interval=2):
    """CPU per periodic rescan of an unchanged directory: every staple is recycled, nothing
    is fetched; the daemon only stats the files every `interval` seconds."""
    p = subprocess.Popen([binary, "-q", "-r", str(interval), f"{root}/certs"])
    try:
        time.sleep(3)  # start-up: parse every bundle and verify every staple on disk
        before = cpu_seconds(p.pid)
        time.sleep(seconds)
        return (cpu_seconds(p.pid) - before) / (seconds / interval)
    finally:
        p.terminate()
        p.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    args = parser.parse_args()
    runs = int(os.environ.get("RUNS", "3"))
    idle_seconds = float(os.environ.get("IDLE_SECONDS", "60"))
    threads = int(os.environ.get("THREADS", "8"))
    os.makedirs(WORK, exist_ok=True)
    binary = os.path.abspath(args.binary)
    machine = f"{os.cpu_count()} cores, {os.uname().release}, " + \
        run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).stdout.strip()
    rows = []
    for n in args.sizes:
        port = free_port()
        print(f"N={n}: preparing", flush=True)
        root = make_pki(n, port)
        responder = Responder(root, port)
        try:
            rate = responder_rate(root, port)
            print(f"  responder alone: {rate:.0f} requests/s", flush=True)
            oneoffs, daemons = [], []
            for r in range(runs):
                oneoffs.append(one_off(binary, root, threads))
                print(f"  one-off run {r + 1}: {oneoffs[-1]}", flush=True)
                daemons.append(daemon(binary, root, threads, n, idle_seconds))
                print(f"  daemon run {r + 1}: {daemons[-1]}", flush=True)
            rescan = rescan_cost(binary, root)
        finally:
            responder.stop()

        def med(items, key):
            return statistics.median(i[key] for i in items)

        rows.append((n, med(oneoffs, "wall"), med(daemons, "wall"), med(oneoffs, "cpu") / n * 1000,
                     med(oneoffs, "peak_kib") / 1024, med(daemons, "peak_kib") / 1024,
                     med(daemons, "idle_kib") / 1024, med(daemons, "threads"), med(daemons, "fds"),
                     med(daemons, "wakeups"), rescan * 1000, rate,
                     med(daemons, "anon_kib") / 1024, med(daemons, "file_kib") / 1024))
    print()
    print(f"Machine: {machine}; {runs} runs per size, medians; -t {threads}; idle window {idle_seconds:.0f} s")
    print()
    print("| N | one-off wall (s) | daemon wall (s) | CPU per 1,000 staples (s) | one-off peak RSS (MB) "
          "| daemon peak RSS (MB) | daemon idle RSS (MB) | of which anonymous / file-backed (MB) | threads | fds "
          "| wakeups idle | rescan CPU (ms) | responder alone (req/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} "
              f"| {r[12]:.1f} / {r[13]:.1f} | {r[7]:.0f} | {r[8]:.0f} | {r[9]:.0f} | {r[10]:.1f} | {r[11]:.0f} |")
    print()
    print("File-backed resident pages are shared libraries (libcurl and its dependencies, libcrypto)"
          " and the binary itself, shared with every other process mapping them.")


if __name__ == "__main__":
    main()
