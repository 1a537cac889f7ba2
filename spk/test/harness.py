"""Package Center harness for Backhome's .spk files (entry point: spk/test/run.sh).

DSM cannot run here, so this does what Package Center does, in a throwaway root, and checks the result:
  1. the archive layout, INFO, conf, wizards and icons of both packages (spkcheck.py), and that packing
     twice gives the same bytes;
  2. install (wizard answers, package user, scripts as that user), start, status, the service and the web
     UI through a real nginx carrying the package's reverse-proxy snippet, and the idle service's RSS;
  3. a task against the simulator and a backup into the shared folder;
  4. an upgrade to a newer build: tasks, secrets and the repository survive, the service comes back;
  5. uninstall keeping the data, reinstall, the backups are found again; uninstall deleting the data;
  6. the aarch64 binary under qemu-user: the service answers and a tiny backup completes.
Every failed check stops the run with a message; the exit code is then 1.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dsm import (DsmSessions, Nginx, PackageCenter, PackageUser, free_port, http_get,  # noqa: E402
                 kill_quietly, port_in_use, wait_for)
from spkcheck import CheckFailed, check_spk, extract, require  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
SERVICE_PORT = 8418
RSS_LIMIT_KB = 30 * 1024
SIZE_LIMIT = 25 * 1024 * 1024
SHARE = "Backhome"
TASK = "tenant1"
# Lines for the summary at the end of spk/test/run.sh.
FIGURES = []


def log(line):
    print(line, flush=True)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def repack(binary, ui_dist, out, build_number, source_date, port=None):
    """Packs the x86_64 binary and web UI of dist/ again with spk/build.sh --bin --ui-dist (no
    compiling, and edits of ui/ meanwhile do not matter); returns the .spk."""
    command = ["bash", os.path.join(REPO, "spk/build.sh"), "--arch", "x86_64", "--bin", binary,
               "--out", out, "--build-number", str(build_number)]
    if ui_dist:
        command += ["--ui-dist", ui_dist]
    if port:
        command += ["--port", str(port)]
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    require(result.returncode == 0, f"spk/build.sh failed:\n{result.stdout}\n{result.stderr}")
    found = [f for f in os.listdir(out) if f.endswith(f"-{build_number}.spk")]
    require(len(found) == 1, f"spk/build.sh made {found} in {out}")
    return os.path.join(out, found[0])


def mount_btrfs_volume(root, volume):
    """A loop-mounted btrfs image as /volume1 when we are root and can; None otherwise."""
    if os.geteuid() != 0 or not shutil.which("mkfs.btrfs"):
        return None
    image = os.path.join(root, "volume1.img")
    with open(image, "wb") as f:
        f.truncate(512 * 1024 * 1024)
    if subprocess.run(["mkfs.btrfs", "-q", image], capture_output=True).returncode != 0:
        return None
    if subprocess.run(["mount", "-o", "loop", image, volume], capture_output=True).returncode != 0:
        return None
    return image


class Service:
    """Calls to the running package: the backhome CLI as the package user, its data dir and share."""

    def __init__(self, center):
        self.center = center

    def cli(self, *args, expect=0, timeout=300):
        env = self.center.env("")
        env["SYNOPKG_PKGVAR"] = os.path.join(self.center.pkg_root(), "var")
        command = [os.path.join(self.center.pkg_root(), "target/bin/backhome"),
                   "--data-dir", env["SYNOPKG_PKGVAR"], *args]
        kwargs = {}
        if self.center.user.as_root:
            kwargs = {"user": self.center.user.uid, "group": self.center.user.gid, "extra_groups": []}
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd="/",
                                timeout=timeout, **kwargs)
        if expect is not None and result.returncode != expect:
            raise CheckFailed(f"backhome {' '.join(args)} exited {result.returncode}, expected {expect}"
                              f"\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")
        return result

    def pid(self):
        with open(os.path.join(self.center.folder("var"), "backhome.pid")) as f:
            return int(f.read().strip())

    def rss_kb(self):
        with open(f"/proc/{self.pid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise CheckFailed("no VmRSS for the service")


def check_through_nginx(nginx, has_ui):
    """The service's health and UI through the package's nginx snippet."""
    status, _, body = http_get(nginx.url("/backhome/api/v1/health"))
    require(status == 200, f"GET /backhome/api/v1/health through nginx: HTTP {status} {body[:200]!r}")
    health = json.loads(body)
    require(health.get("status") == "ok", f"health says {health}")
    log(f"    nginx /backhome/api/v1/health -> 200 {health}")
    status, headers, _ = http_get(nginx.url("/backhome"))
    require(status == 301 and headers.get("Location", "").endswith("/backhome/"),
            f"GET /backhome should redirect to /backhome/, got {status} {headers.get('Location')}")
    status, _, body = http_get(nginx.url("/"))
    require(status == 200 and body == b"DSM\n", "DSM's own pages must stay where they were")
    if has_ui:
        status, _, body = http_get(nginx.url("/backhome/"))
        require(status == 200 and b"<html" in body.lower(), f"GET /backhome/ -> {status}, no HTML")
        assets = re.findall(rb'(?:src|href)="([^"#:]+)"', body)
        for asset in assets:
            path = asset.decode()
            require(not path.startswith("/"),
                    f"UI asset {path} is absolute; it would miss the /backhome/ prefix")
            status, _, _ = http_get(nginx.url("/backhome/" + path.lstrip("./")))
            require(status == 200, f"UI asset {path} through nginx: HTTP {status}")
        log(f"    nginx /backhome/ -> the web UI and its {len(assets)} assets")
    else:
        log("    the package has no web UI yet (ui/package.json missing): only the API was checked")


def desktop_apps(nginx, center, details, sessions):
    """Opens the admin app and the portal from ui/config in Chromium, on a stand-in DSM desktop
    (spk/test/desktop.mjs): each window's iframe must show the web UI signed in from the DSM session."""
    links = center.dsm_ui_links()
    require(len(links) == 1, f"one DSM desktop folder expected, INFO dsmuidir gives {links}")
    ui_path = "/webman/3rdparty/" + os.path.basename(links[0][0])
    apps = []
    for entries in details["ui_config"].values():
        for app_id, entry in entries.items():
            if entry.get("type") != "app":
                continue
            admin = not entry.get("allUsers")
            sid = next(s for s, (_, is_admin) in sessions.sessions.items() if is_admin == admin)
            other = next(s for s, (_, is_admin) in sessions.sessions.items() if not is_admin)
            apps.append({"id": app_id, "sid": sid, "user": sessions.sessions[sid][0],
                         "view": "admin" if admin else "portal", "otherSid": other,
                         "otherUser": sessions.sessions[other][0]})
    spec = {"origin": nginx.url("").rstrip("/"), "uiPath": ui_path, "apps": apps}
    node = shutil.which("node")
    require(node, "node is missing (Node 20 runs the desktop test)")
    require(os.path.isdir(os.path.join(REPO, "ui/node_modules/playwright-core")),
            "ui/node_modules/playwright-core is missing (npm ci --prefix ui)")
    result = subprocess.run([node, os.path.join(REPO, "spk/test/desktop.mjs"), json.dumps(spec)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    if result.stdout.strip():
        log(result.stdout.rstrip())
    require(result.returncode == 0, f"the desktop apps failed:\n{result.stderr[-3000:]}")


def start_simulator(graph_sim, work):
    """graph-sim --profile tiny over TLS; returns (process, ready dict) with files readable by all."""
    state = os.path.join(work, "sim")
    os.makedirs(state)
    out = open(os.path.join(work, "sim-ready.json"), "w")
    process = subprocess.Popen([graph_sim, "--profile", "tiny", "--tls", "--state-dir", state],
                               stdout=out, stderr=subprocess.DEVNULL)

    def ready():
        with open(os.path.join(work, "sim-ready.json")) as f:
            text = f.read().strip()
        return json.loads(text) if text.endswith("}") else None

    info = wait_for("graph-sim's ready.json", ready, 60)
    # The package user must read the certificate, its password and the CA.
    secrets = os.path.join(work, "sim-secrets")
    os.makedirs(secrets)
    os.chmod(secrets, 0o755)
    for key in ("cert_pfx", "ca_cert"):
        dest = os.path.join(secrets, os.path.basename(info[key]))
        shutil.copy(info[key], dest)
        os.chmod(dest, 0o644)
        info[key] = dest
    password = os.path.join(secrets, "password")
    with open(password, "w") as f:
        f.write(info["cert_password"])
    os.chmod(password, 0o644)
    info["password_file"] = password
    return process, info


def task_create_args(sim):
    return ["task", "create", "--name", TASK, "--tenant-id", sim["tenant_id"], "--app-id",
            sim["app_id"], "--cert", sim["cert_pfx"], "--cert-password-file", sim["password_file"],
            "--login-endpoint", sim["login_endpoint"], "--graph-endpoint", sim["graph_endpoint"],
            "--ca-cert", sim["ca_cert"]]


def runs(service):
    result = service.cli("runs", "--task", TASK, "--json")
    data = json.loads(result.stdout)
    return data if isinstance(data, list) else data.get("runs", data)


def lifecycle(spk, upgrade_spk, graph_sim, work, port):
    """Install, run, back up, upgrade, uninstall/reinstall and purge the x86_64 package."""
    root = os.path.join(work, "root")
    volume = os.path.join(root, "volume1")
    os.makedirs(volume)
    os.chmod(work, 0o755)
    os.chmod(root, 0o755)
    image = mount_btrfs_volume(work, volume)
    os.chmod(volume, 0o755)
    fs = "btrfs" if image else "plain directory"
    log(f"  throwaway root {root}, /volume1 is a {fs}")
    details = check_spk(spk, "x86_64")
    user = PackageUser(details["username"], details["groupname"])
    nginx = Nginx(work, free_port(), synoman=os.path.join(root, "usr/syno/synoman"))
    center = PackageCenter(root, volume, user, nginx, log)
    service = Service(center)
    sim_process = None
    try:
        if user.as_root:
            log(f"  package user {user.name} (uid {user.uid}); scripts run as that user")
        else:
            log("  not root: scripts run as the current user, no package user is created")

        # The install wizard as DSM shows it.
        message_file = os.path.join(work, "wizard.json")
        with tarfile.open(spk) as tar:
            extract(tar, work, ["WIZARD_UIFILES/install_uifile", "WIZARD_UIFILES/install_uifile.sh"])
        subprocess.run(["sh", os.path.join(work, "WIZARD_UIFILES/install_uifile.sh")], check=True,
                       env={"PATH": os.environ["PATH"], "SYNOPKG_TEMP_LOGFILE": message_file,
                            "BACKHOME_VOLUME_ROOT": root})
        with open(message_file) as f:
            wizard_steps = json.load(f)
        note = wizard_steps[0]["items"][0]["desc"]
        expected = "volume1 (Btrfs)" if image else "no Btrfs volume"
        require(expected in note, f"install wizard note {note!r} should say {expected!r}")
        log(f"    install wizard: {note}")

        nginx.restart()
        center.install(spk, {"wizard_backup_share": SHARE})
        require(center.status() == 0, "status after install should be 0 (running)")
        share = center.share_path(SHARE)
        start_message = center.start_message
        if image:
            require("not Btrfs" not in start_message, "a Btrfs share must not be warned about")
        else:
            require("not Btrfs" in start_message, "a non-Btrfs share must be warned about at start")
        check_through_nginx(nginx, details["has_ui"])
        status, _, _ = http_get(f"http://127.0.0.1:{port}/api/v1/health")
        require(status == 200, "the service answers on its loopback port")
        time.sleep(2)
        rss = service.rss_kb()
        log(f"    idle service RSS: {rss / 1024:.1f} MB (limit {RSS_LIMIT_KB / 1024:.0f} MB)")
        FIGURES.append(f"  idle service RSS (x86_64): {rss / 1024:.1f} MB "
                       f"(limit {RSS_LIMIT_KB / 1024:.0f} MB)")
        require(rss < RSS_LIMIT_KB, f"the idle service uses {rss} kB, more than {RSS_LIMIT_KB} kB")

        # DSM sessions for the desktop apps: the service asks the stand-in CGIs from its next start.
        sessions = DsmSessions(work, {"adminsession": ("admin", True), "usersession": ("alice", False)})
        config = os.path.join(center.folder("var"), "config.toml")
        with open(config, "w") as f:
            f.write(sessions.config_toml())
        user.chown(config)

        # start is idempotent; stop and status report what they should.
        center.run_script(center.scripts(), "start-stop-status", "START", ["start"])
        center.stop()
        require(center.status() == 3, "status of a stopped service is 3")
        require(not port_in_use(port), "the service still listens after stop")
        center.start()
        require(center.status() == 0, "status after start should be 0")
        broken = os.path.join(work, "broken-target")
        os.makedirs(broken)
        center.run_script(center.scripts(), "start-stop-status", "", ["status"],
                          extra={"SYNOPKG_PKGDEST": broken}, expect=150)

        log("  the DSM desktop apps in Chromium (stand-in ExtJS/SYNO.SDS classes, real package)")
        require(details["has_ui"], "the package has no web UI for the desktop apps to open")
        desktop_apps(nginx, center, details, sessions)

        log("  a task against the simulator, and a backup")
        sim_process, sim = start_simulator(graph_sim, work)
        service.cli(*task_create_args(sim))
        started = time.monotonic()
        result = service.cli("backup", "--task", TASK, "--json")
        log(f"    backup: exit 0 in {time.monotonic() - started:.1f} s")
        repo = os.path.join(share, "repositories", TASK)
        require(os.path.isfile(os.path.join(repo, "config.json")),
                f"the repository is not in the shared folder ({repo})")
        listing = service.cli("ls", "--task", TASK, "--recursive", "/").stdout
        require(listing.strip(), "the backup lists no items")
        before = {"runs": len(runs(service)), "listing": listing}
        secret_files = sorted(os.listdir(center.folder("var")))
        log(f"    repository {repo}; var holds {secret_files}")

        log("  upgrade")
        center.upgrade(upgrade_spk)
        require(center.info["version"] != details["info"]["version"], "the upgrade kept the version")
        require(center.status() == 0, "the service is not running after the upgrade")
        check_through_nginx(nginx, details["has_ui"])
        tasks = service.cli("task", "list").stdout
        require(TASK in tasks, f"the task is gone after the upgrade: {tasks!r}")
        require(service.cli("ls", "--task", TASK, "--recursive", "/").stdout == before["listing"],
                "the backup lists other items after the upgrade")
        service.cli("verify", "--task", TASK)
        # A second backup needs the task's secrets (certificate and password) and the repository.
        service.cli("backup", "--task", TASK)
        require(len(runs(service)) == before["runs"] + 1, "the backup after the upgrade was not recorded")
        log(f"    tasks, secrets and repository survived; runs: {before['runs']} -> {before['runs'] + 1}")

        log("  uninstall, keeping the data")
        center.uninstall({"wizard_keep_data": "true", "wizard_delete_data": "false"})
        require(not port_in_use(port), "the service still listens after uninstall")
        require(os.path.isfile(os.path.join(repo, "config.json")), "the repository went with the package")
        require(os.listdir(center.folder("var")), "var was emptied although data was kept")
        _, _, body = http_get(nginx.url("/backhome/api/v1/health"))
        require(body == b"DSM\n", "nginx still proxies /backhome/ after uninstall")

        log("  reinstall: the backups are found again")
        center.install(upgrade_spk, {"wizard_backup_share": SHARE})
        require(center.status() == 0, "the reinstalled service is not running")
        check_through_nginx(nginx, details["has_ui"])
        require(TASK in service.cli("task", "list").stdout, "the task is not found after reinstalling")
        require(len(runs(service)) == before["runs"] + 1, "the runs are not found after reinstalling")
        service.cli("verify", "--task", TASK)

        log("  uninstall, deleting the data")
        center.uninstall({"wizard_keep_data": "false", "wizard_delete_data": "true"})
        require(not os.path.exists(os.path.join(share, "repositories")), "the backups were not deleted")
        require(os.path.isdir(share), "the shared folder itself must stay")
        for kind in ("var", "etc", "home"):
            left = os.listdir(center.folder(kind)) if os.path.isdir(center.folder(kind)) else []
            require(not left, f"{kind} still holds {left} after uninstalling with delete")
        log("    backups, tasks and settings deleted; the shared folder stayed")
    finally:
        kill_quietly(sim_process)
        # A service left over from a failed check.
        pid_file = os.path.join(center.folder("var"), "backhome.pid") if center.name else None
        if pid_file and os.path.exists(pid_file):
            with open(pid_file) as f:
                pid = f.read().strip()
            subprocess.run(["kill", pid], stderr=subprocess.DEVNULL)
        nginx.stop()
        if image and subprocess.run(["umount", volume], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", volume], check=False)
        user.remove()


def aarch64_under_qemu(spk, graph_sim, work):
    """The aarch64 binary in qemu-user: serve answers /api/v1/health; a tiny backup completes."""
    qemu = shutil.which("qemu-aarch64-static")
    require(qemu, "qemu-aarch64-static is missing (apt-get install qemu-user-static)")
    details = check_spk(spk, "aarch64")
    unpacked = os.path.join(work, "aarch64")
    os.makedirs(unpacked)
    with tarfile.open(spk) as outer:
        extract(outer, unpacked, ["package.tgz"])
    with tarfile.open(os.path.join(unpacked, "package.tgz")) as payload:
        extract(payload, unpacked, ["bin/backhome"])
    binary = os.path.join(unpacked, "bin/backhome")
    data = os.path.join(work, "aarch64-data")
    port = free_port()
    server = subprocess.Popen([qemu, binary, "--data-dir", data, "serve", "--listen",
                               f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sim_process = None
    try:
        wait_for("the aarch64 service", lambda: http_get(f"http://127.0.0.1:{port}/api/v1/health")[0] == 200, 60)
        log(f"    aarch64 serve under qemu: /api/v1/health -> 200 ({details['binary_size']} bytes)")
        sim_process, sim = start_simulator(graph_sim, os.path.join(work, "aarch64-sim"))
        env = dict(os.environ, BACKHOME_LOG="warn")
        for args in (task_create_args(sim), ["backup", "--task", TASK]):
            started = time.monotonic()
            result = subprocess.run([qemu, binary, "--data-dir", data, *args], env=env,
                                    capture_output=True, text=True, timeout=900)
            require(result.returncode == 0, f"aarch64 backhome {args[0]} {args[1]} exited "
                    f"{result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            log(f"    aarch64 backhome {args[0]} {args[1]}: exit 0 in {time.monotonic() - started:.1f} s")
    finally:
        kill_quietly(server)
        kill_quietly(sim_process)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=os.path.join(REPO, "dist"))
    parser.add_argument("--graph-sim", required=True)
    parser.add_argument("--build-number", type=int, required=True)
    parser.add_argument("--figures", help="also write the measured figures to this file")
    args = parser.parse_args()
    began = time.monotonic()
    work = tempfile.mkdtemp(prefix="backhome-spk-")
    try:
        spks = {}
        for arch in ("x86_64", "aarch64"):
            spks[arch] = os.path.join(args.dist, f"Backhome-{arch}-" + next(
                f.split(f"Backhome-{arch}-")[1] for f in os.listdir(args.dist)
                if f.startswith(f"Backhome-{arch}-") and f.endswith(f"-{args.build_number}.spk")))
        log("== archive layout, INFO, conf, wizards, icons")
        details = {}
        for arch, spk in spks.items():
            details[arch] = check_spk(spk, arch)
            size = details[arch]["binary_size"]
            log(f"  {os.path.basename(spk)}: ok; binary {size / 1048576:.1f} MB, "
                f".spk {details[arch]['spk_size'] / 1048576:.1f} MB, arch={details[arch]['info']['arch']}")
            require(size < SIZE_LIMIT, f"the {arch} binary is {size} bytes, over {SIZE_LIMIT}")
            FIGURES.append(f"  {arch} binary (stripped, static): {size / 1048576:.1f} MB "
                           f"(limit {SIZE_LIMIT / 1048576:.0f} MB)")

        # The harness repacks dist/'s own binary, so a tree that changes meanwhile does not matter.
        binary = os.path.join(work, "backhome-x86_64")
        with open(binary, "wb") as f:
            f.write(details["x86_64"]["binary"])
        os.chmod(binary, 0o755)
        source_date = details["x86_64"]["source_date"]
        ui_dist = None
        if details["x86_64"]["has_ui"]:
            unpacked = os.path.join(work, "dist-x86_64")
            os.makedirs(unpacked)
            with tarfile.open(spks["x86_64"]) as outer:
                extract(outer, unpacked, ["package.tgz"])
            with tarfile.open(os.path.join(unpacked, "package.tgz")) as payload:
                extract(payload, unpacked, [m.name for m in payload.getmembers()
                                            if m.name == "ui" or m.name.startswith("ui/")])
            ui_dist = os.path.join(unpacked, "ui")

        log("== reproducible: packing again gives the same bytes")
        again = repack(binary, ui_dist, os.path.join(work, "again"), args.build_number, source_date)
        require(sha256(again) == sha256(spks["x86_64"]),
                f"{again} differs from {spks['x86_64']}")
        log(f"  sha256 {sha256(again)} both times")

        port = SERVICE_PORT
        tested = spks["x86_64"]
        if port_in_use(port):
            # Something else (a demo?) holds the package's port on this machine: test a copy packed
            # for a free port, which differs from dist/ only in that number.
            port = free_port()
            log(f"  127.0.0.1:{SERVICE_PORT} is taken here; testing a copy packed for port {port}")
            tested = repack(binary, ui_dist, os.path.join(work, "port"), args.build_number, source_date,
                            port)
        upgrade = repack(binary, ui_dist, os.path.join(work, "upgrade"), args.build_number + 1,
                         source_date,
                         port if port != SERVICE_PORT else None)

        log("== Package Center lifecycle (x86_64)")
        lifecycle(tested, upgrade, args.graph_sim, work, port)

        log("== aarch64 under qemu-user")
        aarch64_under_qemu(spks["aarch64"], args.graph_sim, work)
    except CheckFailed as e:
        log(f"\nFAILED: {e}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"== all package checks passed in {time.monotonic() - began:.0f} s")
    if args.figures:
        with open(args.figures, "w") as f:
            f.write("\n".join(FIGURES) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
