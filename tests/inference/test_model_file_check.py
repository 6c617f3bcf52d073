"""Model files are checked before torch runs any of their code: CRCs, metadata
types, and TorchScript code that must be what this package's exporter writes."""
import json
import zipfile

import pytest


def rewrite(source, target, change):
    """Copy a zip archive, member by member, through ``change(name, bytes) -> bytes``
    (a well-formed archive with correct CRCs: what a deliberate edit produces)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info.filename)))
    return target


def forward_entry(names):
    return next(n for n in names if n.endswith(".py") and "/code/" in n and "inference_graph" in n)


def test_an_exported_model_passes_the_check(exported):
    from gnuradio.amcee.inference.model_file import load_model, read_model_archive

    data, meta = read_model_archive(str(exported))
    assert data == exported.read_bytes() and meta["frame_len"] == 128
    assert load_model(str(exported)).num_exits == 2


def test_code_the_exporter_did_not_write_is_refused_before_it_runs(exported, tmp_path):
    """Three added TorchScript lines (here: one that writes a file at every
    forward) make the file foreign; only trust_model_code loads it."""
    from gnuradio.amcee.inference.engine import EarlyExitEngine
    from gnuradio.amcee.inference.model_file import ModelFileError, load_model

    with zipfile.ZipFile(exported) as archive:
        entry = forward_entry(archive.namelist())
    marker = tmp_path / "written_by_the_model"
    line = f"    _w = torch.save(torch.zeros([1]), {str(marker)!r})\n"

    def inject_statement(name, data):
        """The statement goes first into the body of the entry's first forward."""
        if name != entry:
            return data
        lines = data.decode().splitlines(keepends=True)
        body = next(i for i, text in enumerate(lines) if text.rstrip().endswith(") -> Tensor:")) + 1
        return "".join(lines[:body] + [line] + lines[body:]).encode()

    foreign = rewrite(exported, tmp_path / "foreign.pt", inject_statement)
    with pytest.raises(ModelFileError, match="contains code this package did not write.*--trust-model-code"):
        load_model(str(foreign))
    with pytest.raises(ModelFileError, match="did not write"):
        EarlyExitEngine(str(foreign))
    assert not marker.exists()
    # What the check prevents: trusted, the file's code writes a file at load (smoke test).
    load_model(str(foreign), trust_model_code=True)
    assert marker.exists()
    # A comment is code too: any change of the code entries is refused.
    commented = rewrite(exported, tmp_path / "commented.pt",
                        lambda n, d: d + b"# harmless?\n" if n == entry else d)
    with pytest.raises(ModelFileError, match="did not write"):
        load_model(str(commented))
    assert load_model(str(commented), trust_model_code=True).num_exits == 2


def test_a_flipped_byte_fails_the_crc_check(exported, tmp_path):
    from gnuradio.amcee.inference.model_file import ModelFileError, load_model

    data = bytearray(exported.read_bytes())
    with zipfile.ZipFile(exported) as archive:
        weights = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 1000)
    # The member's bytes start after its local header (30 bytes + name + extra field).
    start = weights.header_offset + 30 + len(weights.filename.encode()) + len(weights.extra or b"")
    offset = data.index(data[start:start + 16], weights.header_offset) + 100
    data[offset] ^= 0x10
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupted: member .*data.* fails its CRC check"):
        load_model(str(corrupt))
    with pytest.raises(ModelFileError, match="corrupted"):
        load_model(str(corrupt), trust_model_code=True)  # trust is about code, not corruption


@pytest.mark.parametrize("field, value, message", [
    ("exit_names", None, "exit_names"),
    ("frame_len", 0, "frame_len"),
    ("frame_len", 1 << 30, "frame_len"),
    ("classes", "BPSK", "classes"),
    ("num_exits", "2", "num_exits|inconsistent exits"),
    ("config", None, "config"),
    ("thresholds", 0.3, "thresholds"),
])
def test_metadata_of_the_wrong_type_is_a_model_file_error(exported, tmp_path, field, value, message):
    from gnuradio.amcee.inference.model_file import ModelFileError, load_model

    def change(name, data):
        if not name.endswith("/extra/amcee.json"):
            return data
        meta = json.loads(data)
        meta[field] = value
        return json.dumps(meta).encode()

    bad = rewrite(exported, tmp_path / "bad.pt", change)
    with pytest.raises(ModelFileError, match=message):
        load_model(str(bad), trust_model_code=True)


def test_the_reference_of_a_process_without_network_code_is_the_same(exported):
    """A flowgraph's process builds the reference in a subprocess: same code
    as in this process, which scripted other networks before (torch numbers
    classes and temporaries per process)."""
    from gnuradio.amcee.inference import model_file
    from gnuradio.amcee.network.model_code import reference_code

    meta = model_file.read_model_archive(str(exported))[1]
    here = model_file._normalised_code(reference_code(meta["config"]))
    there = model_file._normalised_code(model_file._reference_code_in_subprocess(meta["config"], "x"))
    assert here == there and any("def forward" in block for block in here)


def test_the_cli_refuses_foreign_code_unless_trusted(exported, tmp_path, capsys):
    from gnuradio.amcee.cli import main

    with zipfile.ZipFile(exported) as archive:
        entry = forward_entry(archive.namelist())
    foreign = rewrite(exported, tmp_path / "foreign.pt", lambda n, d: d + b"# x\n" if n == entry else d)
    assert main(["info", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not write" in err
    assert main(["info", str(foreign), "--trust-model-code"]) == 0
    # The trust ends with the command.
    assert main(["info", str(foreign)]) == 2


def test_weights_changed_after_export_are_refused_even_with_valid_crcs(exported, tmp_path):
    """torch.jit.save writes fresh CRCs, so only the digest in the metadata
    tells that the weights are not those the exporter wrote."""
    import torch

    from gnuradio.amcee.inference.model_file import METADATA_FILE, ModelFileError, load_model

    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(exported), _extra_files=extra)
    with torch.no_grad():  # the weights are the inference graph's folded buffers
        next(t for t in module.state_dict().values() if t.is_floating_point()).mul_(1.5)
    edited = tmp_path / "edited.pt"
    module.save(str(edited), _extra_files=extra)
    with pytest.raises(ModelFileError, match="changed after export"):
        load_model(edited)
    load_model(edited, trust_model_code=True)  # the user's choice: as it is


def test_a_file_of_an_earlier_version_is_written_again_with_this_versions_code(exported, tmp_path, capsys):
    """amcee export OLD.pt: a model file whose code an earlier gr-amcee wrote
    (here: the code with a comment added) is refused without
    --trust-model-code, and with it written again with this version's code,
    its weights and metadata kept."""
    import torch

    from gnuradio.amcee.cli import main
    from gnuradio.amcee.inference.model_file import load_model, weights_digest

    with zipfile.ZipFile(exported) as archive:
        entry = forward_entry(archive.namelist())
    old = rewrite(exported, tmp_path / "old.pt", lambda n, d: d + b"# an earlier version\n" if n == entry else d)
    new = tmp_path / "new.pt"
    assert main(["export", str(old), "--out", str(new)]) != 0
    err = capsys.readouterr().err
    assert "did not write" in err and "amcee export FILE --out NEW.pt --trust-model-code" in err
    assert not new.exists()
    assert main(["export", str(old), "--out", str(new), "--trust-model-code"]) == 0
    before, after = load_model(str(old), trust_model_code=True), load_model(str(new))  # no trust needed now
    assert after.meta["thresholds"] == before.meta["thresholds"] and after.version == before.version
    assert weights_digest(after.module) == weights_digest(before.module)
    x = torch.randn(4, 2, 128)
    for a, b in zip(before.module.exit_logits(x), after.module.exit_logits(x)):
        assert torch.equal(a, b)
