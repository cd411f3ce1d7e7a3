# Prepares a job's Python dependencies in its private directory, once per job, before its
# first worker starts (udf-python/src/deps.rs runs it with python.client.executable).
#
# stdin: {"dir", "files", "archives": [[path, target]], "requirements": [file, cache] | null,
#         "executable", "pythonpath": [..]}
# stdout: {"executable", "path": [..], "cwd"}
# On a failure: exit 1, the reason on stderr (first line names the configuration key).
#
# Standard library only: it runs before the workers' interpreter may even exist (that one can
# come out of an archive, as `venv.zip/venv/bin/python`).
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile


class Refused(Exception):
    pass


def inside(root, path):
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def copy_files(entries, dest):
    """python.files: each entry copied into a directory of its own; the path entries."""
    path = []
    for i, f in enumerate(entries):
        if not os.path.exists(f):
            raise Refused(f"python.files: {f}: no such file or directory")
        own = os.path.join(dest, str(i))
        os.makedirs(own)
        name = os.path.basename(os.path.normpath(f))
        target = os.path.join(own, name)
        if os.path.isdir(f):
            # A directory: its modules and packages are importable.
            shutil.copytree(f, target, symlinks=True)
            path.append(target)
        else:
            shutil.copy2(f, target)
            lower = name.lower()
            # A zip, wheel or egg is imported from (zipimport); a module from its directory.
            path.append(target if lower.endswith((".zip", ".whl", ".egg")) else own)
    return path


def extract_zip(archive, dest):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            out = os.path.join(dest, info.filename)
            if not inside(dest, out if not info.filename.endswith("/") else out.rstrip("/")):
                raise Refused(f"python.archives: {archive}: member {info.filename!r} is outside its directory")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                # zip -y keeps a symbolic link as its target's text (a venv's bin/python).
                os.makedirs(os.path.dirname(out), exist_ok=True)
                os.symlink(z.read(info).decode(), out)
                continue
            z.extract(info, dest)
            if mode & 0o777 and not info.is_dir():
                os.chmod(out, mode & 0o777)


def extract_tar(archive, dest):
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            if not inside(dest, os.path.join(dest, m.name)):
                raise Refused(f"python.archives: {archive}: member {m.name!r} is outside its directory")
        try:
            # 'tar' keeps modes and a venv's absolute symbolic links; refuses paths outside,
            # also through a link the archive made.
            t.extractall(dest, filter="tar")
        except TypeError:  # Python before 3.11.4 has no filters; members were checked above.
            t.extractall(dest)
        except tarfile.TarError as e:
            raise Refused(f"python.archives: {archive}: {e}") from e


def extract_archives(archives, work):
    for archive, target in archives:
        if not os.path.isfile(archive):
            raise Refused(f"python.archives: {archive}: no such file")
        target = target or os.path.basename(archive)
        dest = os.path.join(work, target)
        if os.path.isabs(target) or not inside(work, dest) or os.path.realpath(dest) == os.path.realpath(work):
            raise Refused(f"python.archives: {archive}#{target}: the target must be a directory name inside the working directory")
        if os.path.exists(dest):
            raise Refused(f"python.archives: two archives extract into {target!r}")
        os.makedirs(dest)
        if zipfile.is_zipfile(archive):
            extract_zip(archive, dest)
        elif tarfile.is_tarfile(archive):
            extract_tar(archive, dest)
        else:
            raise Refused(f"python.archives: {archive}: not a zip or tar archive")


def executable(exe, work):
    if os.path.isabs(exe) or os.sep not in exe:
        return exe
    # Relative to the working directory first, where the archives are (`venv.zip/venv/bin/python`).
    in_work = os.path.join(work, exe)
    if os.path.lexists(in_work):
        return in_work
    return os.path.abspath(exe)


def install(exe, requirements, cache, dest):
    if not os.path.isfile(requirements):
        raise Refused(f"python.requirements: {requirements}: no such file")
    cmd = [exe, "-m", "pip", "install", "--target", dest, "-r", requirements,
           "--disable-pip-version-check", "--no-warn-script-location", "--no-input", "-q"]
    if cache:
        if not os.path.isdir(cache):
            raise Refused(f"python.requirements: the cache directory {cache} does not exist")
        cmd += ["--no-index", "--find-links", cache]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise Refused(f"python.requirements: cannot run {exe} (python.executable): {e}")
    if p.returncode != 0:
        out = (p.stderr.strip() or p.stdout.strip())[-4000:]
        raise Refused(f"python.requirements: `pip install -r {requirements}` with {exe} failed (exit {p.returncode}):\n{out}")


def main():
    req = json.load(sys.stdin)
    root = req["dir"]
    work = os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)
    path = copy_files(req["files"], os.path.join(root, "files"))
    extract_archives(req["archives"], work)
    exe = executable(req["executable"], work)
    if req["requirements"]:
        file, cache = req["requirements"]
        dest = os.path.join(root, "requirements")
        install(exe, file, cache, dest)
        path.append(dest)
    path += req["pythonpath"]
    json.dump({"executable": exe, "path": path, "cwd": work}, sys.stdout)


if __name__ == "__main__":
    try:
        main()
    except Refused as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        print(f"preparing the Python dependencies: {e}", file=sys.stderr)
        sys.exit(1)
