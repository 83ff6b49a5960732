#!/usr/bin/env python3
"""Stapler benchmark driver (see run.sh): PKI generation, a local responder, measurements.

Every figure comes from public tools: /usr/bin/time -v for --one-off runs, /proc/PID/status
and /proc/PID/stat for the daemon. Several runs per size; the table shows medians.

The responder is responder.py (answers signed once at start, keep-alive) unless
RESPONDER=openssl asks for `openssl ocsp` (signs each answer, one connection per answer).
RESPONDER=delegated and RESPONDER=openssl-delegated sign through a delegated responder
certificate embedded in every answer (RFC 6960 §4.2.2.2), as many CAs do.

With an issuer-signed responder each size also runs the floor (floor.c, compiled here with
gcc): the least CPU one staple costs on this machine, to set Stapler's CPU per staple
against. FLOOR=no leaves it out.
"""
import argparse
import http.client
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# BENCH_WORK: where PKIs are kept; give each concurrent benchmark its own.
WORK = os.environ.get("BENCH_WORK", "/tmp/stapler-bench")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# PKI: one CA, one leaf key and CSR, N certificates signed by `openssl ca` in parallel chunks


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cached_pki(n):
    """A complete PKI of this size from an earlier run, with the port baked into its
    certificates, when that port is free: generating 10,000 certificates takes a while."""
    for name in sorted(os.listdir(WORK)):
        prefix, _, port = name.rpartition("-")
        if prefix == f"pki-{n}" and port.isdigit() and os.path.exists(f"{WORK}/{name}/complete") \
                and port_is_free(int(port)):
            return f"{WORK}/{name}", int(port)
    return None


def make_pki(n, port):
    root = f"{WORK}/pki-{n}-{port}"
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
# Responders. By default responder.py: every answer signed once at start, served over
# HTTP/1.1 keep-alive, so the responder costs little next to Stapler. RESPONDER=openssl
# keeps the old `openssl ocsp`, which signs each answer, embeds the CA certificate and
# closes the connection after each answer: useful to compare against.

RESPONDER_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "responder.py")


def bundles(root):
    return sorted(e.path for e in os.scandir(f"{root}/certs") if e.name.endswith(".pem"))


def ocsp_request(root, cert=None):
    """A DER OCSP request (no nonce, SHA-1 CertID) made by the openssl CLI."""
    return subprocess.run(["openssl", "ocsp", "-issuer", f"{root}/ca.pem", "-cert", cert or bundles(root)[0],
                           "-no_nonce", "-reqout", "/dev/stdout"], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout


def response_status(der):
    """responseStatus of a DER OCSPResponse: the ENUMERATED right after the outer SEQUENCE
    header (0 = successful, 6 = unauthorized)."""
    start = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    if der[0] != 0x30 or der[start:start + 2] != b"\x0a\x01":
        raise ValueError("not an OCSP response")
    return der[start + 2]


def post(connection, request):
    """POSTs one request on `connection` (reopened by http.client when the server closed it)
    and returns the DER answer, which must be a successful OCSP response."""
    connection.request("POST", "/", request, {"Content-Type": "application/ocsp-request"})
    answer = connection.getresponse()
    body = answer.read()
    if answer.status != 200 or response_status(body) != 0:
        raise ValueError(f"responder answered HTTP {answer.status}, {len(body)} bytes")
    return body


def wait_answering(port, request, seconds):
    deadline = time.monotonic() + seconds
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            post(connection, request)
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            connection.close()


class PresignedResponder:
    name = "responder.py (pre-signed, keep-alive, no embedded certificate)"
    extra_arguments = []

    def __init__(self, root, port):
        self.log = open(f"{root}/responder-{port}.log", "w")
        # Its own process group, so stop() reaches anything it leaves behind.
        self.proc = subprocess.Popen([sys.executable, RESPONDER_PY, "--pki", root, "--port", str(port)]
                                     + self.extra_arguments,
                                     stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid
        self.served = None
        # Signing takes about a millisecond per answer here, more on a busy machine.
        line = self._read_line(deadline=time.monotonic() + 120 + len(bundles(root)) / 200)
        if not line.startswith("ready "):
            self.stop()
            sys.exit(f"responder.py did not start (said {line!r}); see {self.log.name}")
        print(f"  responder: {line}", flush=True)
        try:
            wait_answering(port, ocsp_request(root), seconds=10)
        except (OSError, ValueError, http.client.HTTPException) as error:
            self.stop()
            sys.exit(f"responder.py does not answer: {error}")

    def _read_line(self, deadline):
        """One line from its stdout, waiting at most until `deadline` (a pipe read alone could
        block forever on a responder that hangs)."""
        fd, data = self.proc.stdout.fileno(), b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def stop(self):
        # SIGTERM first: it then prints how many requests it served.
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()
        said = self._read_line(deadline=time.monotonic() + 1)
        if said.startswith("served "):
            self.served = int(said.split()[1])


class DelegatedPresignedResponder(PresignedResponder):
    name = "responder.py --delegated (pre-signed by a delegated responder certificate embedded in each answer)"
    extra_arguments = ["--delegated"]


def delegated_signer(root):
    """A delegated OCSP responder certificate of the benchmark CA (id-kp-OCSPSigning), made
    once per PKI."""
    certificate, key = f"{root}/delegated.pem", f"{root}/delegated.key"
    if not os.path.exists(certificate):
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", f"{root}/delegated.csr", "-subj", "/CN=Benchmark OCSP Responder"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(f"{root}/delegated.ext", "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n")
        subprocess.run(["openssl", "x509", "-req", "-in", f"{root}/delegated.csr", "-CA", f"{root}/ca.pem",
                        "-CAkey", f"{root}/ca.key", "-CAcreateserial", "-days", "30", "-extfile", f"{root}/delegated.ext",
                        "-out", certificate], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return certificate, key


class OpenSSLResponder:
    name = "openssl ocsp (signs each answer, embeds the CA certificate, closes each connection)"
    delegated = False

    def __init__(self, root, port):
        self.log = open(f"{root}/responder-{port}.log", "w")
        self.served = None
        signer, key = delegated_signer(root) if self.delegated else (f"{root}/ca.pem", f"{root}/ca.key")
        # One process: `-multi` on OpenSSL 3.0.x sometimes never listens. Its own process
        # group, so nothing it leaves behind survives the run.
        self.proc = subprocess.Popen(
            ["openssl", "ocsp", "-index", f"{root}/index.txt", "-port", str(port), "-rsigner", signer,
             "-rkey", key, "-CA", f"{root}/ca.pem", "-ndays", "1"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid
        # Ready when it answers a real request: a bare probe connection that sends nothing
        # makes an openssl ocsp worker spin.
        try:
            wait_answering(port, ocsp_request(root), seconds=10)
        except (OSError, ValueError, http.client.HTTPException) as error:
            self.stop()
            sys.exit(f"openssl ocsp responder did not start: {error}")

    def stop(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class DelegatedOpenSSLResponder(OpenSSLResponder):
    name = "openssl ocsp -rsigner <delegated responder> (signs each answer, embeds the delegate)"
    delegated = True


RESPONDERS = {"python": PresignedResponder, "openssl": OpenSSLResponder,
              "delegated": DelegatedPresignedResponder, "openssl-delegated": DelegatedOpenSSLResponder}


def responder_rate(responder, root, port, seconds=3.0, threads=4, certificates=8):
    """The responder alone: `threads` clients, each reusing one keep-alive connection, POST
    real requests for a few certificates in turn. Returns (requests/s, responder CPU s).
    The clients are Python too and share the 2 cores, so requests/s is a floor; requests per
    responder CPU second is what the responder itself could sustain."""
    paths = bundles(root)
    requests = [ocsp_request(root, paths[i * len(paths) // certificates]) for i in range(certificates)]
    done = [0] * threads
    errors = []

    def worker(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            k = index
            while time.monotonic() < stop:
                post(connection, requests[k % len(requests)])
                done[index] += 1
                k += 1
        except (OSError, ValueError, http.client.HTTPException) as error:
            errors.append(error)
        finally:
            connection.close()

    cpu_before = cpu_seconds(responder.pid)
    started = time.monotonic()
    stop = started + seconds
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    if errors:
        sys.exit(f"responder failed under load: {errors[0]!r}")
    return sum(done) / elapsed, cpu_seconds(responder.pid) - cpu_before, sum(done)


# ---------------------------------------------------------------------------------------
# Measurements


def move_staples_aside(root):
    """Empties ROOT/certs of staples before a cold run by renaming them into
    ROOT/old-staples/<run>/. Unlinking them would skew the next run: on ext4 without a journal
    (this machine) inode allocation skips recently deleted inodes (recently_deleted() in
    find_inode_bit), which added much kernel CPU to the next run's file creation. A rename
    frees no inode; delete_old_staples() removes them all after the last measurement."""
    shelf = f"{root}/old-staples"
    os.makedirs(shelf, exist_ok=True)
    taken = [int(name) for name in os.listdir(shelf) if name.isdigit()]
    run_dir = f"{shelf}/{max(taken, default=0) + 1}"
    os.mkdir(run_dir)
    for entry in os.scandir(f"{root}/certs"):
        if entry.name.endswith(".ocsp"):
            os.rename(entry.path, f"{run_dir}/{entry.name}")


def delete_old_staples(root):
    shutil.rmtree(f"{root}/old-staples", ignore_errors=True)


def staple_count(root):
    """Staples Stapler wrote: ROOT/certs/*.ocsp only (not the ones moved aside, not its
    hidden temporary files)."""
    return sum(1 for e in os.scandir(f"{root}/certs") if e.name.endswith(".ocsp") and not e.name.startswith("."))


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def kib(value):
    return int(value.split()[0])


def pss_kib(pid):
    """Proportional set size: shared pages divided among the processes mapping them."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return kib(line.partition(":")[2])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLOCK_TICKS


def one_off(binary, root, threads, responder):
    move_staples_aside(root)
    responder_cpu = cpu_seconds(responder.pid)
    out = subprocess.run(["/usr/bin/time", "-v", binary, "--one-off", "-q", "-t", str(threads), f"{root}/certs"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"stapler --one-off exited {out.returncode}:\n{out.stderr[-2000:]}")
    responder_cpu = cpu_seconds(responder.pid) - responder_cpu
    t = out.stderr

    def field(name):
        return re.search(re.escape(name) + r":\s*(.+)", t).group(1).strip()

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    seconds = float(wall[-1]) + 60 * float(wall[-2]) + (3600 * float(wall[-3]) if len(wall) > 2 else 0)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {"wall": seconds, "cpu": cpu, "peak_kib": int(field("Maximum resident set size (kbytes)")),
            "staples": staple_count(root), "responder_cpu": responder_cpu}


def daemon(binary, root, threads, n, idle_seconds, responder):
    move_staples_aside(root)
    responder_cpu = cpu_seconds(responder.pid)
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
        responder_cpu = cpu_seconds(responder.pid) - responder_cpu
        time.sleep(2)  # let the last pushes and frees settle
        status = proc_status(p.pid)
        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
        switches = int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
        time.sleep(idle_seconds)
        after = proc_status(p.pid)
        wakeups = int(after["voluntary_ctxt_switches"]) + int(after["nonvoluntary_ctxt_switches"]) - switches
        return {"wall": wall, "cpu": cpu, "idle_kib": kib(after["VmRSS"]), "peak_kib": kib(after["VmHWM"]),
                "anon_kib": kib(after["RssAnon"]), "file_kib": kib(after["RssFile"]), "pss_kib": pss_kib(p.pid),
                "threads": int(after["Threads"]), "fds": fds, "wakeups": wakeups, "responder_cpu": responder_cpu}
    finally:
        p.terminate()
        p.wait()


# ---------------------------------------------------------------------------------------
# The floor (floor.c): per certificate only what a staple cannot do without (read the bundle,
# one HTTP exchange over a kept-alive loopback connection, SHA-256 and one ECDSA P-256
# verification, temporary file and rename), in C on one thread, its own CPU only.

FLOOR_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")
FLOOR_STAGES = ("list", "read", "http", "verify", "write")


def build_floor():
    binary = f"{WORK}/floor"
    out = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", binary, FLOOR_SOURCE, "-lcrypto", "-lpthread"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        sys.exit(f"cannot build {FLOOR_SOURCE}:\n{out.stdout}")
    return binary


def ecdsa_verify_rate():
    """P-256 verifications per second by `openssl speed` (one core): what the verify stage
    of the floor is made of."""
    out = run(["openssl", "speed", "-seconds", "3", "ecdsap256"]).stdout
    for line in out.splitlines():
        if "nistp256" in line and "ecdsa" in line:
            return float(line.split()[-1])
    sys.exit(f"cannot read openssl speed's answer:\n{out[-1000:]}")


def floor_answer(root, port):
    """A real request and the responder's answer to it, for the floor's server thread to
    serve every time: the floor verifies real bytes."""
    request = ocsp_request(root)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        answer = post(connection, request)
    finally:
        connection.close()
    with open(f"{root}/floor-request.der", "wb") as f:
        f.write(request)
    with open(f"{root}/floor-answer.der", "wb") as f:
        f.write(answer)
    return f"{root}/floor-request.der", f"{root}/floor-answer.der"


def floor(binary, root, n, request, answer):
    """One run of the floor over ROOT/certs after moving the staples aside, as a cold run of
    Stapler starts; µs of its CPU per staple, per stage and in all."""
    move_staples_aside(root)
    out = subprocess.run([binary, f"{root}/certs", f"{root}/ca.pem", request, answer],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"floor exited {out.returncode}: {out.stdout}{out.stderr[-2000:]}")
    result = {key: float(value) for key, value in (pair.split("=") for pair in out.stdout.split())}
    if result["staples"] != n or staple_count(root) != n:
        sys.exit(f"floor wrote {staple_count(root)} staples for {result['staples']:.0f} bundles, wanted {n}")
    return result


def floor_summary(result):
    stages = ", ".join(f"{stage} {result[stage]:.1f}" for stage in FLOOR_STAGES)
    return f"{result['total']:.1f} µs per staple ({stages}; user {result['user']:.1f}, sys {result['sys']:.1f})"


# ---------------------------------------------------------------------------------------
# Rescans, event bursts and memory per certificate. CPU here is read from /proc/PID/schedstat
# (nanoseconds on the CPU), not /proc/PID/stat (10 ms ticks): a rescan of 1,000 files costs a
# few milliseconds.


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


class MetricsProbe:
    """Scrapes the daemon's /metrics (aggregates only) over and over from a thread while it
    runs, and keeps the worst latency: the loop is single-threaded, so a scrape waits for
    whatever the loop is doing. `values()` scrapes once and returns the samples by name."""

    def __init__(self, port, pause=2.0):
        self.port, self.pause = port, pause
        self.worst, self.scrapes, self.failures = 0.0, 0, []
        self._stop = threading.Event()
        self._thread = None

    def values(self, timeout=30):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", "/metrics")
            answer = connection.getresponse()
            body = answer.read().decode()
        finally:
            connection.close()
        if answer.status != 200:
            raise ValueError(f"metrics answered HTTP {answer.status}")
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.values(timeout=60)
                self.worst = max(self.worst, time.monotonic() - started)
                self.scrapes += 1
            except (OSError, ValueError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
            self._stop.wait(self.pause)

    def __enter__(self):
        self.worst, self.scrapes, self.failures = 0.0, 0, []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.failures:
            sys.exit(f"metrics scrape failed: {self.failures[0]}")


def start_watched_daemon(binary, root, n, rescan_interval, metrics_port, extra=()):
    """A daemon over ROOT/certs with metrics, once it serves a good staple for all n
    certificates and nothing is queued or running (staples on disk are recycled)."""
    p = subprocess.Popen([binary, "-q", "-t", "8", "-r", str(rescan_interval), "--metrics", f"127.0.0.1:{metrics_port}",
                          "--metrics-per-certificate=false", *extra, f"{root}/certs"])
    probe = MetricsProbe(metrics_port)
    deadline = time.monotonic() + 900
    while True:
        if p.poll() is not None:
            sys.exit(f"daemon exited {p.returncode}")
        if time.monotonic() > deadline:
            p.kill()
            sys.exit("daemon did not settle in 15 minutes")
        try:
            v = probe.values()
            if v.get('stapler_certificates_by_state{state="good"}') == n and v["stapler_fetches_running"] == 0 \
                    and v["stapler_fetches_queued"] == 0:
                return p, probe
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            pass
        time.sleep(1)  # a scrape walks every certificate: polling must not be the load


def cpu_bursts(pid, seconds, sample=0.005, quiet=0.2):
    """Bursts of CPU an otherwise idle daemon spends in `seconds`, each as (CPU s, wall s):
    between periodic rescans it sleeps, so each burst is one rescan. A burst ends after
    `quiet` seconds without CPU; one still running at the end is left out."""
    bursts, current, last_busy, started = [], None, 0.0, time.monotonic()
    previous = cpu_ns(pid)
    while time.monotonic() - started < seconds:
        time.sleep(sample)
        now, used = time.monotonic(), cpu_ns(pid)
        if used != previous:
            if current is None:
                current = [previous, now - sample]
            last_busy = now
        elif current is not None and now - last_busy > quiet:
            bursts.append(((used - current[0]) / 1e9, last_busy - current[1]))
            current = None
        previous = used
    return bursts


def rescan_costs(binary, root, n, rescans=8, interval=3):
    """CPU of a periodic rescan of n unchanged files (median of the rescans seen over
    `rescans` intervals, each found as a burst of CPU of an otherwise sleeping daemon, measured
    once start-up is over), and the worst metrics scrape during a few more."""
    p, probe = start_watched_daemon(binary, root, n, interval, free_port())
    try:
        time.sleep(1)
        bursts = cpu_bursts(p.pid, rescans * interval + 1)
        if len(bursts) < rescans // 2:
            sys.exit(f"saw only {len(bursts)} rescans in {rescans * interval} s")
        with probe:
            time.sleep(3 * interval)
        full = full_look_costs(p.pid)
    finally:
        p.terminate()
        p.wait()
    result = {"rescan_cpu": statistics.median(b[0] for b in bursts), "rescan_wall": statistics.median(b[1] for b in bursts),
              "rescans_seen": len(bursts), "rescan_worst_scrape": probe.worst,
              "full_scan_cpu": statistics.median(full)}
    print(f"  rescans: {len(bursts)} seen, median {result['rescan_cpu'] * 1000:.1f} ms CPU, "
          f"{result['rescan_wall'] * 1000:.0f} ms wall; worst scrape {probe.worst * 1000:.0f} ms; "
          f"full look (SIGHUP, hourly): median {result['full_scan_cpu'] * 1000:.1f} ms CPU of {len(full)}", flush=True)
    return result


def full_look_costs(pid, looks=4, quiet=0.3, limit=10.0):
    """CPU of a scan that stats every file (at start, on SIGHUP, and at least hourly among the
    periodic rescans, which count known files of inotify-covered directories instead): one
    SIGHUP at a time, each measured until the daemon is quiet again. A SIGHUP plans the next
    periodic rescan a whole interval later, so none falls inside the window."""
    costs = []
    for _ in range(looks):
        before = cpu_ns(pid)
        os.kill(pid, signal.SIGHUP)
        started = last_busy = time.monotonic()
        previous = before
        while time.monotonic() - started < limit:
            time.sleep(0.005)
            used = cpu_ns(pid)
            if used != previous:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > quiet and used != before:
                break
            previous = used
        costs.append((cpu_ns(pid) - before) / 1e9)
        time.sleep(0.5)
    return costs


def scrape_cpu(pid, probe, samples=5):
    """CPU the daemon spends answering one scrape (median of a few, while it is idle): a scrape
    walks every certificate, so the probe's own cost is taken out of the burst's CPU."""
    costs = []
    for _ in range(samples):
        before = cpu_ns(pid)
        probe.values()
        time.sleep(0.05)
        costs.append((cpu_ns(pid) - before) / 1e9)
    return statistics.median(costs)


def wait_quiet(pid, probe, per_scrape, quiet=3.0, sample=0.5, limit=900):
    """Waits until the daemon has been quiet for `quiet` seconds, quiet meaning no more CPU
    in a sample than the probe's scrapes in it explain; returns when it last was busy."""
    started = last_busy = time.monotonic()
    previous, scrapes = cpu_ns(pid), probe.scrapes
    while time.monotonic() - last_busy < quiet:
        if time.monotonic() - started > limit:
            sys.exit(f"daemon still busy after {limit} s")
        time.sleep(sample)
        used, now_scrapes = cpu_ns(pid), probe.scrapes
        if (used - previous) / 1e9 > 1.5 * per_scrape * (now_scrapes - scrapes + 1) + 0.002:
            last_busy = time.monotonic()
        previous, scrapes = used, now_scrapes
    return last_busy


def burst_costs(binary, root, n):
    """Every certificate touched: n IN_ATTRIB events, each a changed file to parse again and
    fetch at once (an operator's `touch` asks for that). CPU until the daemon is quiet again
    with all n stapled anew, less what the probe's scrapes (one every 2 s) cost, and the worst
    scrape meanwhile. No periodic rescans run, so the CPU is the events' and the fetches'."""
    p, probe = start_watched_daemon(binary, root, n, 3600, free_port())
    try:
        time.sleep(1)
        per_scrape = scrape_cpu(p.pid, probe)
        before = probe.values()['stapler_fetches_total{result="success"}']
        cpu_before = cpu_ns(p.pid)
        started = time.monotonic()
        with probe:
            for entry in os.scandir(f"{root}/certs"):
                if entry.name.endswith(".pem"):
                    os.utime(entry.path)
            while True:
                done = wait_quiet(p.pid, probe, per_scrape)
                fetched = probe.values()['stapler_fetches_total{result="success"}'] - before
                if fetched >= n:
                    break
                if time.monotonic() - started > 900:
                    sys.exit(f"only {fetched:.0f} of {n} certificates were stapled again after the burst")
            scrapes = probe.scrapes
        cpu = (cpu_ns(p.pid) - cpu_before) / 1e9
        result = {"burst_cpu": cpu - scrapes * per_scrape, "burst_cpu_with_scrapes": cpu, "burst_wall": done - started,
                  "burst_worst_scrape": probe.worst, "scrapes": scrapes, "scrape_cpu": per_scrape}
    finally:
        p.terminate()
        p.wait()
    print(f"  burst: {result['burst_cpu']:.2f} s CPU ({cpu:.2f} s with {scrapes} scrapes of {per_scrape * 1000:.1f} ms), "
          f"{result['burst_wall']:.1f} s until quiet; worst scrape {probe.worst * 1000:.0f} ms", flush=True)
    return result


def empty_daemon_kib(binary):
    """Resident memory of a daemon watching an empty directory: the floor per-certificate
    figures are measured from."""
    empty = f"{WORK}/empty"
    os.makedirs(empty, exist_ok=True)
    p = subprocess.Popen([binary, "-q", empty])
    try:
        time.sleep(2)
        return kib(proc_status(p.pid)["VmRSS"])
    finally:
        p.terminate()
        p.wait()


def print_watch_table(machine, watch_rows, empty_kib):
    print()
    print(f"Machine: {machine}. Rescans, event bursts and memory per certificate (empty daemon: "
          f"{empty_kib / 1024:.1f} MB resident)")
    print()
    print("| N | rescan CPU (ms) | per file (µs) | rescan wall (ms) | worst scrape during rescans (ms) "
          "| full look CPU (ms) | per file (µs) | burst CPU (s) | per file (µs) | burst wall (s) | worst scrape during the burst (ms) "
          "| idle RSS (MB) | peak RSS (MB) | peak / idle | bytes per certificate above empty |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, w, daemons in watch_rows:
        if daemons:
            idle = statistics.median(d["idle_kib"] for d in daemons)
            peak = statistics.median(d["peak_kib"] for d in daemons)
            memory = f"{idle / 1024:.1f} | {peak / 1024:.1f} | {peak / idle:.2f} | {(idle - empty_kib) * 1024 / n:.0f}"
        else:
            memory = "| | |"
        print(f"| {n} | {w['rescan_cpu'] * 1000:.1f} | {w['rescan_cpu'] * 1e6 / n:.2f} | {w['rescan_wall'] * 1000:.0f} "
              f"| {w['rescan_worst_scrape'] * 1000:.0f} | {w['full_scan_cpu'] * 1000:.1f} "
              f"| {w['full_scan_cpu'] * 1e6 / n:.2f} | {w['burst_cpu']:.2f} | {w['burst_cpu'] * 1e6 / n:.0f} "
              f"| {w['burst_wall']:.1f} | {w['burst_worst_scrape'] * 1000:.0f} | {memory} |")


def print_floor_table(floor_rows, verify_rate):
    print()
    print(f"The floor (contrib/bench/floor.c): µs of CPU per staple on one thread, medians of each column "
          f"over the runs; `openssl speed ecdsap256`: {verify_rate:.0f} verifications/s "
          f"({1e6 / verify_rate:.1f} µs each)")
    print()
    print("| N | list | read | HTTP | SHA-256 + verify | temporary file + rename | total | user | sys |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, floors in floor_rows:
        cells = " | ".join(f"{statistics.median(f[key] for f in floors):.1f}"
                           for key in (*FLOOR_STAGES, "total", "user", "sys"))
        print(f"| {n} | {cells} |")
    print()
    print("User and sys come from getrusage(RUSAGE_THREAD) and include four clock reads a staple "
          "(about a microsecond each here) that the stages and the total leave out.")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    args = parser.parse_args()
    runs = int(os.environ.get("RUNS", "3"))
    idle_seconds = float(os.environ.get("IDLE_SECONDS", "60"))
    threads = int(os.environ.get("THREADS", "8"))
    responder_kind = os.environ.get("RESPONDER", "python")
    if responder_kind not in RESPONDERS:
        sys.exit(f"RESPONDER must be one of {', '.join(RESPONDERS)}, not {responder_kind!r}")
    Responder = RESPONDERS[responder_kind]
    os.makedirs(WORK, exist_ok=True)
    binary = os.path.abspath(args.binary)
    machine = f"{os.cpu_count()} cores, {os.uname().release}, " + \
        run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).stdout.strip()
    watch = os.environ.get("WATCH", "yes")
    if watch not in ("yes", "no", "only"):
        sys.exit(f"WATCH must be yes, no or only, not {watch!r}")
    print(f"Responder: {Responder.name}", flush=True)
    # The floor verifies with the issuer's key: a delegated answer is signed by another.
    floor_binary = None
    if os.environ.get("FLOOR", "yes") != "no" and watch != "only" and responder_kind in ("python", "openssl"):
        floor_binary = build_floor()
        verify_rate = ecdsa_verify_rate()
        print(f"openssl speed ecdsap256: {verify_rate:.0f} verifications/s ({1e6 / verify_rate:.1f} µs each)", flush=True)
    elif responder_kind not in ("python", "openssl"):
        print("The floor is left out: it checks answers signed by the issuer, not by a delegate", flush=True)
    empty_kib = empty_daemon_kib(binary) if watch != "no" else None
    rows, roots, watch_rows, floor_rows = [], [], [], []
    try:
        for n in args.sizes:
            print(f"N={n}: preparing", flush=True)
            cached = cached_pki(n)
            if cached:
                root, port = cached
            else:
                port = free_port()
                root = make_pki(n, port)
            roots.append(root)
            responder = Responder(root, port)
            try:
                if watch == "only":
                    if staple_count(root) < n:
                        daemon(binary, root, threads, n, 1, responder)  # staples to recycle
                    watch_rows.append((n, {**rescan_costs(binary, root, n), **burst_costs(binary, root, n)}, None))
                    continue
                rate, rate_cpu, rate_count = responder_rate(responder, root, port)
                per_cpu = rate_count / rate_cpu if rate_cpu > 0 else float("inf")
                print(f"  responder alone: {rate:.0f} requests/s over keep-alive; {rate_count} requests "
                      f"took {rate_cpu:.2f} responder CPU s ({per_cpu:.0f} per CPU second)", flush=True)
                oneoffs, daemons, floors = [], [], []
                if floor_binary:
                    floor_request, floor_response = floor_answer(root, port)
                for r in range(runs):
                    # The floor runs next to Stapler's runs, not after them all: on a shared
                    # machine the load changes within minutes. The one-off that follows moves
                    # its staples (every one the same certificate's answer) aside.
                    if floor_binary:
                        floors.append(floor(floor_binary, root, n, floor_request, floor_response))
                        print(f"  floor run {r + 1}: {floor_summary(floors[-1])}", flush=True)
                    oneoffs.append(one_off(binary, root, threads, responder))
                    print(f"  one-off run {r + 1}: {oneoffs[-1]}", flush=True)
                    daemons.append(daemon(binary, root, threads, n, idle_seconds, responder))
                    print(f"  daemon run {r + 1}: {daemons[-1]}", flush=True)
                rescan = rescan_costs(binary, root, n)
                if watch == "yes":
                    watch_rows.append((n, {**rescan, **burst_costs(binary, root, n)}, daemons))
                if floors:
                    floor_rows.append((n, floors))
            finally:
                responder.stop()
            if responder.served is not None:
                print(f"  responder served {responder.served} requests in all", flush=True)

            def med(items, key):
                return statistics.median(i[key] for i in items)

            rows.append((n, med(oneoffs, "wall"), med(daemons, "wall"), med(oneoffs, "cpu") / n * 1000,
                         med(oneoffs, "peak_kib") / 1024, med(daemons, "peak_kib") / 1024,
                         med(daemons, "idle_kib") / 1024, med(daemons, "threads"), med(daemons, "fds"),
                         med(daemons, "wakeups"), rescan["rescan_cpu"] * 1000, rate,
                         med(daemons, "anon_kib") / 1024, med(daemons, "file_kib") / 1024,
                         med(oneoffs, "responder_cpu"), med(daemons, "responder_cpu"), per_cpu,
                         med(daemons, "pss_kib") / 1024,
                         med(floors, "total") / 1000 if floors else None))
    finally:
        # Only now, after every measurement of every size: see move_staples_aside().
        for root in roots:
            delete_old_staples(root)
    if watch_rows:
        print_watch_table(machine, watch_rows, empty_kib)
    if not rows:
        return
    print()
    print(f"Machine: {machine}; {runs} runs per size, medians; -t {threads}; idle window {idle_seconds:.0f} s; "
          f"responder: {Responder.name}")
    print()
    print("| N | one-off wall (s) | daemon wall (s) | CPU per 1,000 staples (s) | one-off peak RSS (MB) "
          "| daemon peak RSS (MB) | daemon idle RSS (MB) | of which anonymous / file-backed (MB) | idle PSS (MB) "
          "| threads | fds "
          "| wakeups idle | rescan CPU (ms) | responder CPU during one-off / daemon (s) "
          "| responder alone (req/s; per responder CPU s) | floor CPU per staple (ms) | Stapler / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # CPU per 1,000 staples in s is CPU per staple in ms.
        floor_cells = f"{r[18]:.3f} | {r[3] / r[18]:.2f}" if r[18] else "– | –"
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} "
              f"| {r[12]:.1f} / {r[13]:.1f} | {r[17]:.1f} | {r[7]:.0f} | {r[8]:.0f} | {r[9]:.0f} | {r[10]:.1f} "
              f"| {r[14]:.2f} / {r[15]:.2f} | {r[11]:.0f}; {r[16]:.0f} | {floor_cells} |")
    if floor_rows:
        print_floor_table(floor_rows, verify_rate)
    print()
    print(f"Responder: {Responder.name}. Its CPU during a run is read from /proc/PID/stat; on "
          f"{os.cpu_count()} cores it competes with Stapler for CPU, so compare it with the wall times.")
    print("File-backed resident pages are shared libraries (libcurl and its dependencies, libcrypto)"
          " and the binary itself, shared with every other process mapping them; PSS counts each"
          " shared page divided by the number of processes mapping it.")


if __name__ == "__main__":
    main()
