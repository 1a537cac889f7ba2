"""Static checks of a .spk: the archive layout, INFO, conf, wizards, icons and the payload.

Used by harness.py; each check raises CheckFailed with a message that says what is wrong.
"""

import calendar
import gzip
import hashlib
import io
import json
import re
import struct
import tarfile
import time

REQUIRED_INFO_KEYS = ("package", "version", "os_min_ver", "description", "arch", "maintainer")
# Families and platforms DSM 7 knows for our two builds (dsm-package.md 2.2).
KNOWN_ARCHES = {
    "x86_64": {"x86_64"},
    "aarch64": {"armv8", "rtd1296", "rtd1619b", "armada37xx"},
}
SCRIPTS = ("preinst", "postinst", "preuninst", "postuninst", "preupgrade", "postupgrade",
           "start-stop-status")
WIZARDS = ("install_uifile", "upgrade_uifile", "uninstall_uifile")
APP_ICON_SIZES = (16, 24, 32, 48, 64, 72, 256)
ELF_MACHINE = {"x86_64": 0x3E, "aarch64": 0xB7}


class CheckFailed(Exception):
    """A package does not look the way DSM's Package Center requires."""


def require(condition, message):
    """Raises CheckFailed(message) unless condition holds."""
    if not condition:
        raise CheckFailed(message)


def extract(tar, path, names=None):
    """Extracts all of tar (or the named members) under path, keeping modes but not owners.

    Uses tarfile's "tar" filter where this Python has it (3.11.4+; Debian 12 ships 3.11.2)."""
    members = [tar.getmember(n) for n in names] if names else None
    if hasattr(tarfile, "tar_filter"):
        tar.extractall(path, members=members, filter="tar")
    else:
        for member in members or tar.getmembers():
            require(not member.name.startswith("/") and ".." not in member.name.split("/"),
                    f"unsafe archive entry {member.name}")
        tar.extractall(path, members=members)


def parse_info(text):
    """Parses INFO's key="value" lines into a dict."""
    info = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"', line)
        require(match, f"INFO line {number} is not key=\"value\": {line!r}")
        key, value = match.groups()
        require(key not in info, f"INFO sets {key} twice")
        info[key] = value
    return info


def png_size(data, name):
    """Returns (width, height) of PNG bytes."""
    require(data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{name} is not a PNG")
    return struct.unpack(">II", data[16:24])


def check_info(info, arch):
    """Checks INFO's mandatory keys and formats for the given build arch."""
    for key in REQUIRED_INFO_KEYS:
        require(info.get(key), f"INFO lacks the mandatory key {key}")
    require(re.fullmatch(r"[^:/><|=]+", info["package"]), "INFO package has a forbidden character")
    version = info["version"]
    require(re.fullmatch(r"[0-9]+([._-][0-9]+)*-[0-9]+", version),
            f"INFO version {version!r} is not [feature]-[build] with numeric parts")
    require(all(int(p) < 2**31 for p in re.split(r"[._-]", version)), "INFO version part too big")
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)-([0-9]+)", info["os_min_ver"])
    require(match, f"INFO os_min_ver {info['os_min_ver']!r} is not X.Y-BUILD")
    major, minor, build = (int(g) for g in match.groups())
    require((major, minor, build) >= (7, 0, 40000), "INFO os_min_ver is below DSM 7.0-40000")
    arches = set(info["arch"].split())
    require(arches and arches <= KNOWN_ARCHES[arch],
            f"INFO arch {info['arch']!r} does not fit a {arch} build")
    for key in ("extractsize", "checksum"):
        require(info.get(key), f"INFO lacks {key}")
    require(info.get("dsmuidir"), "INFO lacks dsmuidir")
    require(info.get("dsmappname"), "INFO lacks dsmappname")
    for key in ("instuninst_restart_services", "startstop_restart_services"):
        require(info.get(key) == "nginx.service",
                f"INFO {key} must restart nginx.service for the web-config snippet")
    require("@" not in "".join(info.values()), "INFO still holds a template placeholder")


def check_tar_determinism(tar, name, mtime):
    """Entries sorted, owned by root and stamped with the source date."""
    children = {}
    for member in tar.getmembers():
        parent, _, base = member.name.rstrip("/").rpartition("/")
        children.setdefault(parent, []).append(base.encode())
    for parent, bases in children.items():
        require(bases == sorted(bases), f"{name}: the entries of '{parent or '.'}' are not sorted")
    for member in tar.getmembers():
        require(member.uid == 0 and member.gid == 0, f"{name}: {member.name} is not owned by 0:0")
        require(member.mtime == mtime, f"{name}: {member.name} has mtime {member.mtime}, not {mtime}")


def elf_info(data):
    """Returns (machine, has_interpreter) of an ELF64 little-endian executable."""
    require(data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "bin/backhome is not ELF64 LE")
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp = False
    for i in range(phnum):
        p_type = struct.unpack_from("<I", data, phoff + i * phentsize)[0]
        if p_type == 3:  # PT_INTERP: a dynamically linked program
            interp = True
    return machine, interp


def source_date_of(info):
    """SOURCE_DATE_EPOCH of a build: INFO's create_time (UTC, YYYYMMDD-HH:MM:SS)."""
    stamp = info.get("create_time", "")
    require(re.fullmatch(r"[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}", stamp),
            f"INFO create_time {stamp!r} is not YYYYMMDD-HH:MM:SS")
    return calendar.timegm(time.strptime(stamp, "%Y%m%d-%H:%M:%S"))


def js_classes(source):
    """The classes a desktop script defines with Ext.define("Name", {...}): name -> the text of its body
    (up to the next definition), from which extend, appWindowName and route are read."""
    starts = [(m.start(), m.group(1)) for m in
              re.finditer(r'Ext\.define\(\s*"([A-Za-z0-9_.]+)"\s*,\s*\{', source)]
    classes = {}
    for i, (at, name) in enumerate(starts):
        body = source[at:starts[i + 1][0] if i + 1 < len(starts) else len(source)]
        require(name not in classes, f"the desktop script defines {name} twice")
        fields = {}
        for key in ("extend", "appWindowName", "route"):
            match = re.search(key + r'\s*:\s*"([^"]*)"', body)
            fields[key] = match.group(1) if match else None
        classes[name] = fields
    return classes


def check_ui_config(config, scripts, dsmappname):
    """Checks the DSM desktop registration (dsm-package.md 5.3, style B): JS app modules only, each app
    class an AppInstance whose window class (type lib) is an AppWindow onto #/admin or #/portal, both
    defined in the script the config maps them to. Returns the two apps' entries (admin first)."""
    require(".url" not in config, "the DSM ui config must not register .url apps (DSM would show "
            "a second tile that opens a browser tab)")
    apps = {}
    for name, entries in config.items():
        require(name.endswith(".js") and isinstance(entries, dict) and entries,
                f"the DSM ui config entry {name!r} is not a script with classes")
        defined = js_classes(scripts[name])
        for class_name, entry in entries.items():
            require(entry.get("type") in ("app", "lib"),
                    f"{class_name}: type must be app or lib, not {entry.get('type')!r}")
            require(class_name in defined, f"{class_name} is registered but {name} does not define it")
            if entry["type"] != "app":
                continue
            window = entry.get("appWindow")
            require(window and entries.get(window, {}).get("type") == "lib",
                    f"{class_name}: appWindow {window!r} is not a lib class of {name}")
            require(window in defined, f"{class_name}: {name} does not define its window {window}")
            require(defined[class_name]["extend"] == "SYNO.SDS.AppInstance",
                    f"{class_name} must extend SYNO.SDS.AppInstance")
            require(defined[class_name]["appWindowName"] == window,
                    f"{class_name}: appWindowName {defined[class_name]['appWindowName']!r} "
                    f"is not its appWindow {window}")
            require(defined[window]["extend"] == "SYNO.SDS.AppWindow",
                    f"{window} must extend SYNO.SDS.AppWindow")
            require(entry.get("title") and entry.get("icon"), f"{class_name} lacks a title or icon")
            apps[class_name] = dict(entry, route=defined[window]["route"])
    require(dsmappname in apps, f"INFO dsmappname {dsmappname} is not an app of the DSM ui config")
    require(len(apps) == 2, "the DSM ui config must register the admin app and the portal")
    admins = [a for a in apps.values() if not a.get("allUsers")]
    portals = [a for a in apps.values() if a.get("allUsers")]
    require(len(admins) == 1 and len(portals) == 1, "one app for admins, one for all users")
    require(not apps[dsmappname].get("allUsers"), "dsmappname must be the admin app")
    require(portals[0].get("grantPrivilege") == "all" and portals[0].get("advanceGrantPrivilege") is True,
            "the portal must be grantable in Application Privileges (grantPrivilege all, advance)")
    require(admins[0]["route"] == "#/admin" and portals[0]["route"] == "#/portal",
            "the admin window opens #/admin and the portal's #/portal")
    return [admins[0], portals[0]]


def check_spk(path, arch):
    """Checks one .spk; returns a dict with INFO, the payload's file list and sizes.

    Every entry of both archives must carry the build's source date (INFO create_time)."""
    with open(path, "rb") as f:
        raw = f.read()
    require(raw[:2] != b"\x1f\x8b", f"{path}: the outer .spk must be a plain tar, not gzip")
    outer = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    members = {m.name.rstrip("/"): m for m in outer.getmembers()}

    def read(name):
        require(name in members and members[name].isfile(), f"{path}: {name} is missing")
        return outer.extractfile(members[name]).read()

    for name in ("INFO", "package.tgz", "conf/privilege", "conf/resource",
                 "PACKAGE_ICON.PNG", "PACKAGE_ICON_256.PNG"):
        read(name)
    top = {n.split("/")[0] for n in members}
    require(top <= {"INFO", "package.tgz", "scripts", "conf", "WIZARD_UIFILES", "LICENSE",
                    "PACKAGE_ICON.PNG", "PACKAGE_ICON_256.PNG"},
            f"{path}: unexpected top-level entries {sorted(top)}")
    for script in SCRIPTS:
        member = members.get(f"scripts/{script}")
        require(member is not None and member.isfile(), f"{path}: scripts/{script} is missing")
        require(member.mode & 0o111 == 0o111, f"{path}: scripts/{script} is not executable")
    require(png_size(read("PACKAGE_ICON.PNG"), "PACKAGE_ICON.PNG") == (64, 64),
            "PACKAGE_ICON.PNG must be 64x64 on DSM 7")
    require(png_size(read("PACKAGE_ICON_256.PNG"), "PACKAGE_ICON_256.PNG") == (256, 256),
            "PACKAGE_ICON_256.PNG must be 256x256")

    info = parse_info(read("INFO").decode("utf-8"))
    check_info(info, arch)
    source_date = source_date_of(info)
    check_tar_determinism(outer, path, source_date)
    package_tgz = read("package.tgz")
    require(hashlib.md5(package_tgz).hexdigest() == info["checksum"],
            "INFO checksum is not the MD5 of package.tgz")

    privilege = json.loads(read("conf/privilege"))
    require(privilege.get("defaults", {}).get("run-as") == "package",
            "conf/privilege must run as the package user (run-as: package)")
    resource = json.loads(read("conf/resource"))
    shares = resource.get("data-share", {}).get("shares", [])
    require(len(shares) == 1 and "{{wizard_backup_share}}" in shares[0].get("name", ""),
            "conf/resource must acquire the wizard's shared folder (data-share)")
    require(privilege.get("username") in shares[0].get("permission", {}).get("rw", []),
            "the package user must get read/write on the backup shared folder")
    web = resource.get("web-config", {}).get("nginx-static-config", {}).get("enable", [])
    require(len(web) == 1 and web[0].get("type") == "dsm",
            "conf/resource must add one nginx snippet to DSM's server (web-config, type dsm)")

    wizards = {}
    for wizard in WIZARDS:
        steps = json.loads(read(f"WIZARD_UIFILES/{wizard}"))
        require(isinstance(steps, list) and steps, f"WIZARD_UIFILES/{wizard} has no steps")
        for step in steps:
            require(step.get("step_title") and step.get("items"),
                    f"WIZARD_UIFILES/{wizard}: a step lacks step_title or items")
        wizards[wizard] = steps
    keys = {s["key"] for st in wizards["install_uifile"] for i in st["items"]
            for s in i.get("subitems", [])}
    require("wizard_backup_share" in keys, "the install wizard must ask for wizard_backup_share")
    keys = {s["key"] for st in wizards["uninstall_uifile"] for i in st["items"]
            for s in i.get("subitems", [])}
    require({"wizard_keep_data", "wizard_delete_data"} <= keys,
            "the uninstall wizard must offer keep or delete")

    inner = tarfile.open(fileobj=io.BytesIO(gzip.decompress(package_tgz)), mode="r:")
    check_tar_determinism(inner, "package.tgz", source_date)
    payload = {m.name.rstrip("/"): m for m in inner.getmembers()}
    require(not any(n.startswith(("/", "./", "..")) for n in payload),
            "package.tgz entries must be relative, without a leading directory")
    binary = payload.get("bin/backhome")
    require(binary is not None and binary.mode & 0o111, "package.tgz lacks an executable bin/backhome")
    data = inner.extractfile(binary).read()
    machine, interp = elf_info(data)
    require(machine == ELF_MACHINE[arch], f"bin/backhome is not an {arch} binary")
    require(not interp, "bin/backhome is dynamically linked; it must be static")
    uidir = info["dsmuidir"]
    require(f"{uidir}/config" in payload, f"package.tgz lacks the DSM ui config {uidir}/config")
    config = json.loads(inner.extractfile(payload[f"{uidir}/config"]).read())
    scripts = {}
    for name in config:
        path = f"{uidir}/{name}"
        require(path in payload, f"the DSM ui config names {name}, but package.tgz lacks {path}")
        scripts[name] = inner.extractfile(payload[path]).read().decode("utf-8")
    apps = check_ui_config(config, scripts, info["dsmappname"])
    for app in apps:
        for size in APP_ICON_SIZES:
            icon = f"{uidir}/" + app["icon"].format(size)
            require(icon in payload, f"package.tgz lacks the app icon {icon}")
            png = inner.extractfile(payload[icon]).read()
            require(png_size(png, icon) == (size, size), f"{icon} is not {size}x{size}")
    snippet = web[0]["relpath"]
    require(snippet in payload, f"package.tgz lacks the nginx snippet {snippet}")
    has_ui = "ui/index.html" in payload
    return {
        "info": info,
        "source_date": source_date,
        "binary": data,
        "binary_size": len(data),
        "spk_size": len(raw),
        "has_ui": has_ui,
        "username": privilege.get("username") or info["package"],
        "groupname": privilege.get("groupname") or privilege.get("username") or info["package"],
        "resource": resource,
        "ui_config": config,
    }
