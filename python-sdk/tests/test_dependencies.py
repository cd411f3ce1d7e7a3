"""PyFlink's dependency management: python.files, python.archives, python.requirements,
python.pythonpath and python.executable (also inside an archive). Every module, archive and
wheel is made by the test; each job's copy lives in its private directory, gone after it."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

from conftest import make_env
from weir.table import DataTypes
from weir.table.udf import udf


def run(env, f, n=3):
    """The function's results on rows 0..n-1, in order."""
    t = env.from_elements([(i,) for i in range(n)], ["x"])
    return [r[0] for r in t.select(f(t.x)).execute().collect()]


def gone(path):
    """The job's directory (the part of `path` up to weir-<job>-<random>) no longer exists."""
    parts = path.split(os.sep)
    job = next(i for i, p in enumerate(parts) if p.startswith("weir-"))
    d = os.sep.join(parts[: job + 1])
    return not os.path.exists(d), d


@udf(result_type=DataTypes.STRING())
def module_file(x):
    import depmod_a

    return depmod_a.where(x)


@udf(result_type=DataTypes.STRING())
def package_file(x):
    import deppkg_b.inner

    return deppkg_b.inner.where(x)


@udf(result_type=DataTypes.STRING())
def zipped_file(x):
    import depzip_c

    return depzip_c.where(x)


def module(path, name):
    path.write_text(textwrap.dedent(f"""
        import os
        def where(x):
            return f"{name}:{{x}}:{{os.path.abspath(__file__)}}"
    """))


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_python_files_module_directory_and_zip(tmp_path, mode):
    src = tmp_path / "src"
    src.mkdir()
    module(src / "depmod_a.py", "a")
    (src / "sibling_not_shipped.py").write_text("raise RuntimeError('should not be imported')\n")
    pkgdir = tmp_path / "pkgs"
    (pkgdir / "deppkg_b").mkdir(parents=True)
    (pkgdir / "deppkg_b" / "__init__.py").write_text("")
    module(pkgdir / "deppkg_b" / "inner.py", "b")
    zpath = tmp_path / "deps.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("depzip_c.py", "def where(x):\n    return f'c:{x}:' + __file__\n")

    env = make_env(streaming=False, python__execution_mode=mode)
    env.add_python_file(str(src / "depmod_a.py"))
    env.add_python_file(str(pkgdir))
    env.get_config().set("python.files", env.get_config().get("python.files") + "," + str(zpath))
    a, b, c = run(env, module_file), run(env, package_file), run(env, zipped_file)

    assert [r.split(":")[:2] for r in a] == [["a", "0"], ["a", "1"], ["a", "2"]]
    for rows, original in ((a, src / "depmod_a.py"), (b, pkgdir / "deppkg_b" / "inner.py")):
        where = rows[0].split(":", 2)[2]
        # The worker imported the job's copy, not the file the program named.
        assert where != str(original) and where.endswith(original.name), where
        assert f"{os.sep}files{os.sep}" in where, where
        removed, d = gone(where)
        assert removed, f"{d} left behind after the job"
    assert [r.split(":")[:2] for r in c] == [["c", "0"], ["c", "1"], ["c", "2"]]
    assert "deps.zip" in c[0] and str(zpath) not in c[0]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_python_files_that_do_not_exist_fail_the_job_naming_them(tmp_path, mode):
    env = make_env(streaming=False, python__execution_mode=mode)
    env.get_config().set("python.files", str(tmp_path / "nope.py"))
    with pytest.raises(Exception, match=r"python.files: .*nope.py: no such file or directory"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))


@udf(result_type=DataTypes.STRING())
def read_archive(x):
    # Relative to the workers' working directory, where archives are extracted.
    with open(os.path.join("words", "data", "w.txt")) as f:
        words = f.read().split()
    with open(os.path.join("more.tar.gz", "t.txt")) as f:
        extra = f.read().strip()
    return f"{words[x]}/{extra}/{os.getcwd()}"


def test_python_archives_zip_and_tar_extracted_in_the_working_directory(tmp_path):
    z = tmp_path / "words.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("data/w.txt", "zero one two")
    t = tmp_path / "more.tar.gz"
    with tarfile.open(t, "w:gz") as f:
        data = b"from a tar\n"
        info = tarfile.TarInfo("t.txt")
        info.size = len(data)
        f.addfile(info, io.BytesIO(data))
    env = make_env(streaming=False)
    env.add_python_archive(str(z), "words")
    env.add_python_archive(str(t))
    out = run(env, read_archive)
    assert [o.split("/", 2)[:2] for o in out] == [["zero", "from a tar"], ["one", "from a tar"], ["two", "from a tar"]]
    cwd = out[0].split("/", 2)[2]
    assert os.path.basename(cwd) == "work" and cwd != os.getcwd()
    removed, d = gone("/" + cwd)
    assert removed, f"{d} left behind"


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_package_in_an_archive_imports_by_its_target_name(tmp_path, mode):
    z = tmp_path / "code.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("__init__.py", "")
        f.writestr("tools.py", "def triple(x):\n    return 3 * x\n")
    env = make_env(streaming=False, python__execution_mode=mode)
    env.add_python_archive(str(z), "arch_lib")
    f = udf(lambda x: __import__("arch_lib.tools").tools.triple(x), result_type=DataTypes.BIGINT())
    assert run(env, f) == [0, 3, 6]


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt"])
def test_archive_members_outside_their_directory_are_refused(tmp_path, member, mode):
    t = tmp_path / "bad.tar"
    with tarfile.open(t, "w") as f:
        info = tarfile.TarInfo(member)
        info.size = 1
        f.addfile(info, io.BytesIO(b"x"))
    env = make_env(streaming=False, python__execution_mode=mode)
    env.add_python_archive(str(t))
    with pytest.raises(Exception, match=f"member '{member}' is outside its directory"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("form", ["tar", "zip"])
def test_a_link_in_an_archive_cannot_carry_members_outside(tmp_path, form):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / f"link.{form}"
    if form == "tar":
        with tarfile.open(archive, "w") as t:
            link = tarfile.TarInfo("x")
            link.type, link.linkname = tarfile.SYMTYPE, str(outside)
            t.addfile(link)
            f = tarfile.TarInfo("x/f.txt")
            f.size = 5
            t.addfile(f, io.BytesIO(b"pwned"))
    else:
        with zipfile.ZipFile(archive, "w") as z:
            link = zipfile.ZipInfo("x")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(link, str(outside))
            z.writestr("x/f.txt", "pwned")
    env = make_env(streaming=False)
    env.add_python_archive(str(archive))
    with pytest.raises(Exception, match=rf"python.archives: {archive}: .*'x/f.txt'.*outside"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_file_that_is_no_archive_is_refused(tmp_path, mode):
    p = tmp_path / "notes.txt"
    p.write_text("not an archive")
    env = make_env(streaming=False, python__execution_mode=mode)
    env.add_python_archive(str(p))
    with pytest.raises(Exception, match="notes.txt: not a zip or tar archive"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))


def wheel(directory, name, version, source):
    """A pure-Python wheel written by hand (what `pip wheel` makes for one module)."""
    tag = f"{name}-{version}"
    files = {
        f"{name}.py": source.encode(),
        f"{tag}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{tag}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: weir-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{tag}.dist-info/RECORD,,")
    files[f"{tag}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = directory / f"{tag}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return out


@udf(result_type=DataTypes.STRING())
def from_requirement(x):
    import weirdeptest

    return weirdeptest.hello(x) + "|" + weirdeptest.__file__


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_requirements_installed_offline_from_a_cache_directory(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    wheel(cache, "weirdeptest", "1.0", "def hello(x):\n    return f'hello {x}'\n")
    req = tmp_path / "requirements.txt"
    req.write_text("weirdeptest==1.0\n")
    env = make_env(streaming=False, python__execution_mode=mode)
    env.set_python_requirements(str(req), str(cache))
    out = run(env, from_requirement)
    assert [o.split("|")[0] for o in out] == ["hello 0", "hello 1", "hello 2"]
    where = out[0].split("|")[1]
    assert f"{os.sep}requirements{os.sep}weirdeptest.py" in where
    removed, d = gone(where)
    assert removed, f"{d} left behind"
    if mode == "process":
        with pytest.raises(ImportError):
            import weirdeptest  # noqa: F401  (installed for the workers, not here)
    else:
        # Imported by this interpreter while the job ran; its directory is off sys.path now.
        assert not any("requirements" in p and "weir-" in p for p in sys.path)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_failed_install_fails_the_job_with_pips_message(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    req = tmp_path / "requirements.txt"
    req.write_text("weir-no-such-package==9.9\n")
    env = make_env(streaming=False, python__execution_mode=mode)
    env.set_python_requirements(str(req), str(cache))
    calls = []
    with pytest.raises(Exception) as e:
        run(env, udf(lambda x: calls.append(x) or x, result_type=DataTypes.BIGINT()))
    msg = str(e.value)
    assert "python.requirements" in msg and "No matching distribution found for weir-no-such-package==9.9" in msg, msg


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_pythonpath_entries_come_first(tmp_path, mode):
    d = tmp_path / "pp"
    d.mkdir()
    module(d / "depmod_pp.py", "pp")
    env = make_env(streaming=False, python__execution_mode=mode)
    env.get_config().set("python.pythonpath", str(d))
    f = udf(lambda x: __import__("depmod_pp").where(x), result_type=DataTypes.STRING())
    assert [o.split(":")[:2] for o in run(env, f)] == [["pp", "0"], ["pp", "1"], ["pp", "2"]]


def zip_tree(root, out):
    """`zip -ry`: symbolic links kept as links (a venv's bin/python is one)."""
    with zipfile.ZipFile(out, "w") as z:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, os.path.dirname(root))
                if os.path.islink(full):
                    info = zipfile.ZipInfo(arc)
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    z.writestr(info, os.readlink(full))
                elif os.path.isfile(full):
                    z.write(full, arc)


@udf(result_type=DataTypes.STRING())
def prefix(x):
    return sys.prefix


@pytest.mark.parametrize("form", ["zip", "tar.gz"])
def test_python_executable_from_a_venv_archive(tmp_path, form):
    venv = tmp_path / "venv"
    # The environment sees this one's packages (weir among them), as a venv packed for
    # PyFlink jobs has apache-flink in it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    if form == "zip":
        archive = tmp_path / "venv.zip"
        zip_tree(str(venv), str(archive))
    else:
        archive = tmp_path / "venv.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            t.add(str(venv), "venv")
    env = make_env(streaming=False)
    env.add_python_archive(str(archive))
    env.get_config().set_python_executable(f"{archive.name}/venv/bin/python")
    out = run(env, prefix)
    assert len(set(out)) == 1
    p = out[0]
    # The workers ran the archive's interpreter, extracted in the job's working directory.
    assert p.endswith(f"{os.sep}work{os.sep}{archive.name}{os.sep}venv") and p != sys.prefix, p
    removed, d = gone(p)
    assert removed, f"{d} left behind"


def test_two_jobs_of_one_name_with_other_files_do_not_share_them(tmp_path):
    # Process mode: each job's workers import their own copy. (In thread mode the interpreter
    # keeps the first module of a name in sys.modules, as any Python program does.)
    outs = []
    for tag in ("first", "second"):
        d = tmp_path / tag
        d.mkdir()
        (d / "depmod_two.py").write_text(f"def where(x):\n    return '{tag}'\n")
        env = make_env(streaming=False)
        env.add_python_file(str(d / "depmod_two.py"))
        outs.append(env)
    f = udf(lambda x: __import__("depmod_two").where(x), result_type=DataTypes.STRING())
    t = [e.from_elements([(1,)], ["x"]) for e in outs]
    r = [t[i].select(f(t[i].x)).execute() for i in range(2)]
    assert [list(x.collect())[0][0] for x in r] == ["first", "second"]


def test_an_interpreter_without_weir_fails_at_once_saying_so(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = make_env(streaming=False)
    env.get_config().set_python_executable(str(venv / "bin" / "python"))
    with pytest.raises(Exception, match=r"\(python.executable\) cannot import weir: install weir-stream in that environment") as e:
        run(env, prefix)
    assert "workers in a row" not in str(e.value), "a missing weir is not worth restarts"


def test_two_archives_into_one_target_are_refused_naming_it(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    for z in (a, b):
        with zipfile.ZipFile(z, "w") as f:
            f.writestr("x.txt", z.name)
    env = make_env(streaming=False)
    env.add_python_archive(str(a), "same")
    env.add_python_archive(str(b), "same")
    with pytest.raises(Exception, match="python.archives: two archives extract into 'same'"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))
    env = make_env(streaming=False)
    env.add_python_archive(str(a), "../up")
    with pytest.raises(Exception, match="the target must be a directory name inside the working directory"):
        run(env, udf(lambda x: x, result_type=DataTypes.BIGINT()))
