"""A stand-in for DSM's Package Center: installs, starts, upgrades and removes a .spk in a throwaway root.

It follows the order, folders, variables and users that DSM 7 uses (see dsm-package.md sections 3 and 4):
scripts run as the package user with the SYNOPKG_* variables and the wizard's answers; the data-share and
web-config resource workers are carried out from conf/resource; nginx is restarted where INFO asks for it.
"""

import json
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

from spkcheck import CheckFailed, extract, parse_info, require


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port):
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_get(url, timeout=5):
    """GET url without following redirects; returns (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(what, predicate, timeout=20.0):
    """Polls predicate until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except OSError as e:
            last_error = e
        time.sleep(0.2)
    raise CheckFailed(f"timed out waiting for {what}" + (f" ({last_error})" if last_error else ""))


class PackageUser:
    """The package's system user and group, created for the test and removed at the end."""

    COMMENT = "Backhome package test user (spk/test)"

    def __init__(self, name, group):
        self.name = name
        self.group = group
        self.created_user = False
        self.created_group = False
        self.as_root = os.geteuid() == 0
        if not self.as_root:
            # Without root the scripts run as the current user, which is what DSM's user is to them.
            self.uid, self.gid = os.getuid(), os.getgid()
            return
        try:
            existing = pwd.getpwnam(name)
        except KeyError:
            existing = None
        if existing and existing.pw_gecos != self.COMMENT:
            raise CheckFailed(f"a user named {name} already exists and is not the test's own; "
                              "the harness will not touch it")
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["groupadd", "--system", group], check=True)
            self.created_group = True
        if not existing:
            subprocess.run(["useradd", "--system", "--gid", group, "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            "--comment", self.COMMENT, name], check=True)
            self.created_user = True
        else:
            self.created_user = True  # left over from an interrupted run: ours to remove
        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def chown(self, path):
        """Gives path (recursively) to the package user, as DSM does for run-as: package."""
        if not self.as_root:
            return
        for dirpath, dirnames, filenames in os.walk(path):
            os.lchown(dirpath, self.uid, self.gid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)

    def remove(self):
        """Deletes the user and group if this run created them."""
        if self.created_user:
            subprocess.run(["userdel", self.name], check=False)
        if self.created_group:
            subprocess.run(["groupdel", self.group], check=False, stderr=subprocess.DEVNULL)


class Nginx:
    """A real nginx standing in for DSM's: one server on 127.0.0.1 whose server block includes the
    snippets the web-config worker installs (type dsm), next to a stand-in for DSM's own pages."""

    def __init__(self, root, port, synoman=None):
        self.dir = os.path.join(root, "nginx")
        self.snippets = os.path.join(self.dir, "dsm.d")
        self.port = port
        self.process = None
        os.makedirs(self.snippets, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        # DSM serves /webman/ (its desktop, and the packages' dsmuidir under webman/3rdparty/) from
        # /usr/syno/synoman.
        webman = f"location /webman/ {{ root {synoman}; }}" if synoman else ""
        conf = f"""{user}worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {self.dir}/logs/access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "DSM\\n"; }}
        {webman}
        include {self.snippets}/*.conf;
    }}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def restart(self):
        """What INFO's *_restart_services="nginx.service" asks DSM to do."""
        self.stop()
        test = subprocess.run(["nginx", "-t", "-c", self.conf, "-p", self.dir],
                              capture_output=True, text=True)
        require(test.returncode == 0, f"nginx rejects the configuration:\n{test.stderr}")
        self.process = subprocess.Popen(["nginx", "-c", self.conf, "-p", self.dir,
                                         "-g", "daemon off;"])
        wait_for("nginx to listen", lambda: port_in_use(self.port), 10)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


class PackageCenter:
    """Installs, runs, upgrades and uninstalls one package in a throwaway root, like DSM 7."""

    def __init__(self, root, volume, user, nginx, log):
        self.root = root
        self.volume = volume
        self.user = user
        self.nginx = nginx
        self.log = log
        self.name = None
        self.info = None
        self.resource = None
        self.wizard = {}
        self.start_message = ""

    # Folders as DSM lays them out (dsm-package.md 3.5).
    def pkg_root(self):
        return os.path.join(self.root, "var/packages", self.name)

    def folder(self, kind):
        where = {"target": "@appstore", "var": "@appdata", "etc": "@appconf", "home": "@apphome",
                 "tmp": "@apptemp"}[kind]
        return os.path.join(self.volume, where, self.name)

    def share_path(self, share):
        return os.path.join(self.volume, share)

    def env(self, status, extra=None, old_version=None):
        """The variables DSM sets for package scripts."""
        info = self.info
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.folder("home"),
            "LANG": "C.UTF-8",
            "SYNOPKG_PKGNAME": self.name,
            "SYNOPKG_PKGVER": info["version"],
            "SYNOPKG_PKGDEST": os.path.join(self.pkg_root(), "target"),
            "SYNOPKG_PKGDEST_VOL": self.volume,
            "SYNOPKG_PKGVAR": os.path.join(self.pkg_root(), "var"),
            "SYNOPKG_PKGTMP": os.path.join(self.pkg_root(), "tmp"),
            "SYNOPKG_PKGHOME": os.path.join(self.pkg_root(), "home"),
            "SYNOPKG_PKG_STATUS": status,
            "SYNOPKG_DSM_LANGUAGE": "enu",
            "SYNOPKG_DSM_VERSION_MAJOR": "7",
            "SYNOPKG_DSM_VERSION_MINOR": "2",
            "SYNOPKG_DSM_VERSION_BUILD": "72806",
            "SYNOPKG_DSM_ARCH": "geminilake" if info["arch"] == "x86_64" else "rtd1619b",
            "SYNOPKG_USERNAME": "admin",
            "SYNOPKG_TEMP_LOGFILE": os.path.join(self.root, "synopkg-message.txt"),
            # Points the scripts' /var/packages/<package> into the throwaway root.
            "BACKHOME_PKG_ROOT": self.pkg_root(),
        }
        if old_version:
            env["SYNOPKG_OLD_PKGVER"] = old_version
        env.update(extra or {})
        return env

    def run_script(self, scripts_dir, script, status, args=(), extra=None, old_version=None,
                   expect=0):
        """Runs one lifecycle script as the package user; returns (exit code, Package Center message)."""
        message_file = os.path.join(self.root, "synopkg-message.txt")
        with open(message_file, "w"):
            pass
        os.chmod(message_file, 0o666)
        env = self.env(status, extra, old_version)
        command = [os.path.join(scripts_dir, script), *args]
        kwargs = {}
        if self.user.as_root:
            kwargs = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        result = subprocess.run(command, env=env, cwd="/", capture_output=True, text=True,
                                timeout=120, **kwargs)
        with open(message_file) as f:
            message = f.read().strip()
        shown = " ".join(args) if args else ""
        self.log(f"    {script} {shown}[{status}] -> {result.returncode}"
                 + (f"  message: {message}" if message else ""))
        if expect is not None and result.returncode != expect:
            raise CheckFailed(f"{script} {shown} ({status}) exited {result.returncode}, "
                              f"expected {expect}\nstdout: {result.stdout}\nstderr: {result.stderr}\n"
                              f"message: {message}")
        return result.returncode, message

    def unpack_spk(self, spk, into):
        """Extracts the .spk as DSM does into its install temp dir; reads INFO and conf/resource."""
        if os.path.exists(into):
            shutil.rmtree(into)
        os.makedirs(into)
        with tarfile.open(spk) as tar:
            extract(tar, into)
        with open(os.path.join(into, "INFO")) as f:
            info = parse_info(f.read())
        with open(os.path.join(into, "conf/resource")) as f:
            resource = json.load(f)
        self.user.chown(into)
        return info, resource

    def make_folders(self):
        """Creates target/var/etc/home/tmp on the volume and the /var/packages links."""
        os.makedirs(self.pkg_root(), exist_ok=True)
        for kind in ("target", "var", "etc", "home", "tmp"):
            path = self.folder(kind)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o700 if kind == "home" else 0o755)
            if self.user.as_root:
                os.chown(path, self.user.uid, self.user.gid)
            link = os.path.join(self.pkg_root(), kind)
            if not os.path.islink(link):
                os.symlink(path, link)

    def extract_payload(self, unpacked):
        target = self.folder("target")
        with tarfile.open(os.path.join(unpacked, "package.tgz")) as tar:
            extract(tar, target)
        self.user.chown(target)

    def synoman(self):
        """The stand-in for /usr/syno/synoman, whose webman/ DSM's nginx serves."""
        return os.path.join(self.root, "usr/syno/synoman")

    def dsm_ui_links(self):
        """INFO dsmuidir as DSM reads it: "dir" (webman/3rdparty/<package>) or "Name:dir Name2:dir2"
        (one webman/3rdparty/<Name> each); returns [(link, folder in target)]."""
        links = []
        for part in self.info.get("dsmuidir", "").split():
            name, _, folder = part.rpartition(":")
            links.append((os.path.join(self.synoman(), "webman/3rdparty", name or self.name),
                          os.path.join(self.pkg_root(), "target", folder)))
        return links

    def link_dsm_ui(self, enable):
        """DSM links webman/3rdparty/<package> to the package's desktop folder while it is installed."""
        for link, folder in self.dsm_ui_links():
            if os.path.islink(link):
                os.remove(link)
            if enable:
                require(os.path.isdir(folder), f"INFO dsmuidir names {folder}, which is not in the package")
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(folder, link)

    def keep_package_files(self, unpacked):
        """DSM keeps INFO, conf and scripts under /var/packages/<package>."""
        for name in ("INFO",):
            shutil.copy2(os.path.join(unpacked, name), os.path.join(self.pkg_root(), name))
        for name in ("conf", "scripts", "WIZARD_UIFILES"):
            dest = os.path.join(self.pkg_root(), name)
            if os.path.exists(dest):
                shutil.rmtree(dest)
            shutil.copytree(os.path.join(unpacked, name), dest, symlinks=True)
        self.user.chown(os.path.join(self.pkg_root(), "scripts"))

    def scripts(self):
        return os.path.join(self.pkg_root(), "scripts")

    # Resource workers (dsm-package.md 4.2).
    def render(self, text):
        for key, value in self.wizard.items():
            text = text.replace("{{" + key + "}}", value)
        return text

    def acquire_data_share(self):
        """data-share: creates the shared folder if missing, grants rw and links shares/<name>."""
        for share in self.resource.get("data-share", {}).get("shares", []):
            name = self.render(share["name"])
            require("{{" not in name, f"data-share name {share['name']!r} was not filled in")
            path = self.share_path(name)
            if not os.path.isdir(path):
                os.makedirs(path)
                os.chmod(path, 0o775)
            if self.user.as_root and self.user.name in share.get("permission", {}).get("rw", []):
                os.chown(path, 0, self.user.gid)
                os.chmod(path, 0o775)
            shares = os.path.join(self.pkg_root(), "shares")
            os.makedirs(shares, exist_ok=True)
            link = os.path.join(shares, name)
            if not os.path.islink(link):
                os.symlink(path, link)

    def release_data_share(self):
        """The share stays; only the link goes."""
        shutil.rmtree(os.path.join(self.pkg_root(), "shares"), ignore_errors=True)

    def web_config(self, enable):
        """web-config: puts the package's nginx snippets into DSM's server block, or takes them out."""
        entries = self.resource.get("web-config", {}).get("nginx-static-config", {}).get("enable", [])
        for number, entry in enumerate(entries):
            require(entry["type"] == "dsm", f"web-config type {entry['type']} is not simulated")
            dest = os.path.join(self.nginx.snippets, f"{self.name}-{number}.conf")
            if enable:
                shutil.copy(os.path.join(self.folder("target"), entry["relpath"]), dest)
            elif os.path.exists(dest):
                os.remove(dest)

    def restart_nginx_if_asked(self, key):
        if self.info.get(key) == "nginx.service":
            self.nginx.restart()

    # Package Center operations (order from dsm-package.md 3.2).
    def install(self, spk, wizard, start=True):
        self.log(f"  install {os.path.basename(spk)} (wizard {wizard})")
        unpacked = os.path.join(self.root, "install-temp")
        self.info, self.resource = self.unpack_spk(spk, unpacked)
        self.name = self.info["package"]
        self.wizard = dict(wizard)
        require(not os.path.exists(os.path.join(self.pkg_root(), "INFO")),
                "the package is installed already")
        self.make_folders()
        extra = dict(wizard, SYNOPKG_PKGINST_TEMP_DIR=unpacked)
        self.run_script(os.path.join(unpacked, "scripts"), "preinst", "INSTALL", extra=extra)
        self.extract_payload(unpacked)
        self.run_script(os.path.join(unpacked, "scripts"), "postinst", "INSTALL", extra=extra)
        self.keep_package_files(unpacked)
        self.link_dsm_ui(True)
        self.restart_nginx_if_asked("instuninst_restart_services")
        if start:
            self.start("INSTALL")

    def start(self, status="START"):
        self.acquire_data_share()  # WHEN_ENABLE
        self.run_script(self.scripts(), "start-stop-status", status, ["prestart"])
        _, self.start_message = self.run_script(self.scripts(), "start-stop-status", status, ["start"])
        self.web_config(True)  # WHEN_STARTUP
        self.restart_nginx_if_asked("startstop_restart_services")

    def stop(self, status="STOP"):
        self.run_script(self.scripts(), "start-stop-status", status, ["prestop"])
        self.run_script(self.scripts(), "start-stop-status", status, ["stop"])
        self.web_config(False)  # WHEN_HALT
        self.restart_nginx_if_asked("startstop_restart_services")

    def status(self):
        code, _ = self.run_script(self.scripts(), "start-stop-status", "", ["status"], expect=None)
        return code

    def upgrade(self, spk, wizard=None):
        old_info = self.info
        old_version = old_info["version"]
        self.log(f"  upgrade {old_version} -> {os.path.basename(spk)}")
        was_running = self.status() == 0
        self.stop("UPGRADE")
        unpacked = os.path.join(self.root, "install-temp")
        new_info, new_resource = self.unpack_spk(spk, unpacked)
        require(new_info["package"] == self.name, "the upgrade is another package")
        new_scripts = os.path.join(unpacked, "scripts")
        upgrade_folder = os.path.join(self.root, "upgrade-temp")
        os.makedirs(upgrade_folder, exist_ok=True)
        if self.user.as_root:
            os.chown(upgrade_folder, self.user.uid, self.user.gid)
        extra = dict(wizard or {}, SYNOPKG_TEMP_UPGRADE_FOLDER=upgrade_folder,
                     SYNOPKG_PKGINST_TEMP_DIR=unpacked)
        self.info = new_info
        self.run_script(new_scripts, "preupgrade", "UPGRADE", extra=extra, old_version=old_version)
        self.info = old_info
        self.run_script(self.scripts(), "preuninst", "UPGRADE", extra=extra)
        self.run_script(self.scripts(), "postuninst", "UPGRADE", extra=extra)
        self.link_dsm_ui(False)
        # target and tmp are replaced; var, etc and home stay.
        for kind in ("target", "tmp"):
            shutil.rmtree(self.folder(kind))
        self.info, self.resource = new_info, new_resource
        self.make_folders()
        self.run_script(new_scripts, "preinst", "UPGRADE", extra=extra, old_version=old_version)
        self.extract_payload(unpacked)
        self.run_script(new_scripts, "postinst", "UPGRADE", extra=extra, old_version=old_version)
        self.run_script(new_scripts, "postupgrade", "UPGRADE", extra=extra, old_version=old_version)
        self.keep_package_files(unpacked)
        self.link_dsm_ui(True)
        self.restart_nginx_if_asked("instuninst_restart_services")
        if was_running:
            self.start("UPGRADE")

    def uninstall(self, wizard):
        self.log(f"  uninstall (wizard {wizard})")
        if self.status() == 0:
            self.stop("UNINSTALL")
        self.run_script(self.scripts(), "preuninst", "UNINSTALL", extra=wizard)
        # WHEN_POSTUNINST comes before postuninst: the share's link is gone by then, and postuninst
        # has to find the share through the path the scripts saved.
        self.release_data_share()
        self.run_script(self.scripts(), "postuninst", "UNINSTALL", extra=wizard)
        self.link_dsm_ui(False)
        for kind in ("target", "tmp"):
            shutil.rmtree(self.folder(kind))
        shutil.rmtree(self.pkg_root())
        self.restart_nginx_if_asked("instuninst_restart_services")


def kill_quietly(process):
    """Stops a child process started by the harness."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DsmSessions:
    """Stand-ins for what the service asks DSM about a browser's session (dsm-package.md 6.1):
    authenticate.cgi prints the user whose `id` cookie it is when the SynoToken matches, login.cgi hands
    out the session's SynoToken, and a group file lists the administrators. The service is pointed at
    them through config.toml in its data dir, the way an admin could point it at other paths."""

    def __init__(self, root, sessions):
        """sessions: {session id: (user, is admin)}; ids are letters and digits."""
        self.dir = os.path.join(root, "dsm-auth")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.sessions = sessions
        table = os.path.join(self.dir, "sessions")
        with open(table, "w") as f:
            for sid, (user, _) in sessions.items():
                require(sid.isalnum(), f"session id {sid!r} must be letters and digits")
                f.write(f"{sid} {user} token{sid}\n")
        admins = ",".join(user for user, admin in sessions.values() if admin)
        self.group = os.path.join(self.dir, "group")
        with open(self.group, "w") as f:
            f.write(f"users:x:100:\nadministrators:x:101:{admins}\n")
        lookup = f"""#!/bin/sh
# The session in the id cookie: "<id> <user> <SynoToken>" from the table, or nothing.
sid=$(printf '%s' "$HTTP_COOKIE" | tr ';' '\\n' | sed -n 's/^ *id=\\([A-Za-z0-9]*\\)$/\\1/p' | head -n 1)
[ -n "$sid" ] || exit 0
line=$(grep "^$sid " {table} | head -n 1)
[ -n "$line" ] || exit 0
user=$(echo "$line" | cut -d' ' -f2)
token=$(echo "$line" | cut -d' ' -f3)
"""
        self.authenticate = os.path.join(self.dir, "authenticate.cgi")
        with open(self.authenticate, "w") as f:
            f.write(lookup + """# Like DSM with CSRF protection on: the session's SynoToken must come with it.
[ "$QUERY_STRING" = "SynoToken=$token" ] || [ "${HTTP_X_SYNO_TOKEN:-}" = "$token" ] || exit 0
echo "$user"
""")
        self.login = os.path.join(self.dir, "login.cgi")
        with open(self.login, "w") as f:
            f.write(lookup.replace("exit 0", "{ printf 'Content-Type: application/json\\n\\n"
                                   "{\"success\":false}\\n'; exit 0; }")
                    + """printf 'Content-Type: application/json\\n\\n'
printf '{"SynoToken":"%s","result":"success","success":true}\\n' "$token"
""")
        for path in (table, self.group, self.authenticate, self.login):
            os.chmod(path, 0o755 if path.endswith(".cgi") else 0o644)

    def config_toml(self):
        """The [auth] section that points the service at these stand-ins."""
        return ("[auth]\nbackend = \"dsm\"\n"
                f"dsm_authenticate_cgi = [{json.dumps(self.authenticate)}]\n"
                f"dsm_login_cgi = [{json.dumps(self.login)}]\n"
                f"dsm_group_file = {json.dumps(self.group)}\n"
                "dsm_webapi_url = \"\"\n")
