"""Research value kept (issue 16): private knowledge base, CSA headers, descriptors, SOP Class UIDs.

Every file here is generated with pydicom; private blocks sit at odd offsets, creators are written
with other case and trailing spaces, private data sits inside per-frame functional groups.
"""
from __future__ import annotations

import dataclasses
import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import csa_header, engine_context, read_back_as_file
from deidkit import engine
from deidkit import guidelines as gl
from deidkit.csa import clean_csa, parse_csa
from deidkit.mapping import shift_value
from deidkit.sweep import Identifiers, clean_descriptor

KEY = b"r" * 32


def _ctx(g, **options):
    return engine_context(g, KEY, **options)


def _mr(sop_class: str = "1.2.840.10008.5.1.4.1.1.4") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.1.2.3"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.1.2"
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "MRN1234567"
    ds.PatientBirthDate = "19610203"
    ds.StudyDate = "20240115"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    return ds


def _private(ds: Dataset, group: int, block: int, creator: str, elements: list[tuple[int, str, object]]) -> None:
    """Write a private block exactly where asked (creator text as given, spaces included)."""
    ds.add_new((group << 16) | block, "LO", creator)
    for offset, vr, value in elements:
        ds.add_new((group << 16) | (block << 8) | offset, vr, value)


# ---- private knowledge base: matching as files write creators ----------------------------------

@pytest.mark.parametrize("block", [0x10, 0x11, 0x43, 0xFF])
@pytest.mark.parametrize("creator", ["SIEMENS MR HEADER", "SIEMENS MR HEADER ", "siemens mr header", " Siemens MR Header  "])
def test_siemens_mosaic_parameters_kept_at_any_block_and_creator_spelling(guidelines, block, creator):
    ds = _mr()
    _private(ds, 0x0019, block, creator, [
        (0x0A, "US", 60),                              # Number of Images in Mosaic
        (0x0C, "IS", "1000"),                          # B value
        (0x0E, "FD", [0.0, 0.7071, 0.7071]),           # Diffusion gradient direction
        (0x28, "FD", 22.9),                            # Bandwidth per pixel phase encode
        (0x29, "FD", [0.0, 1030.0, 62.5, 1092.5]),     # Mosaic Ref Acq Times (slice timing)
        (0x08, "CS", "IMAGE NUM 4"),                   # d in the knowledge base
        (0xF7, "LO", "DOE JOHN"),                      # on no list
    ])
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    base = 0x00190000 | (block << 8)
    assert ds[base | 0x0A].value == 60
    assert ds[base | 0x0C].value == 1000
    assert list(ds[base | 0x0E].value) == [0.0, 0.7071, 0.7071]
    assert ds[base | 0x28].value == 22.9
    assert list(ds[base | 0x29].value) == [0.0, 1030.0, 62.5, 1092.5]
    assert (base | 0x08) not in ds and (base | 0xF7) not in ds
    assert ds[0x00190000 | block].value.strip() == creator.strip()  # the creator stays as written


def test_ge_gradients_kept_and_other_vendor_blocks_not_confused(guidelines):
    ds = _mr()
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    _private(ds, 0x0019, 0x10, "GEMS_ACQU_01", [(0xBB, "DS", "0.57735"), (0xBC, "DS", "-0.57735"), (0xBD, "DS", "0.57735")])
    # the same element bytes under another creator on no list: deleted
    _private(ds, 0x0019, 0x20, "ACME PRIVATE 1", [(0xBB, "DS", "1"), (0xBC, "DS", "2")])
    _private(ds, 0x0043, 0x10, "GEMS_PARM_01 ", [(0x39, "IS", ["1000", "0", "0", "0"])])  # slop_int_6..9: b-value
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert [ds[t].value for t in (0x001910BB, 0x001910BC, 0x001910BD)] == [0.57735, -0.57735, 0.57735]
    assert 0x001920BB not in ds and 0x001920BC not in ds and 0x00190020 not in ds  # empty block: creator dropped
    assert list(ds[0x00431039].value) == [1000, 0, 0, 0]


def test_private_data_kept_inside_per_frame_functional_groups(guidelines):
    """Philips enhanced MR: Scale Slope sits in a DD 005 private per-frame sequence; Siemens XA
    puts slice timing and phase-encoding polarity in per-frame private items."""
    ds = _mr("1.2.840.10008.5.1.4.1.1.4.1")
    frames = []
    for i in range(3):
        inner = Dataset()
        _private(inner, 0x2005, 0x10, "Philips MR Imaging DD 001", [(0x0E, "FL", 7.5 + i), (0x18, "LO", "DOE JOHN")])
        frame = Dataset()
        _private(frame, 0x2005, 0x14, "Philips MR Imaging DD 005 ", [(0x0F, "SQ", Sequence([inner]))])
        xa = Dataset()
        _private(xa, 0x0021, 0x11, "SIEMENS MR SDI 02", [(0x04, "DS", str(62.5 * i)), (0x1C, "IS", "1"),
                                                          (0xEE, "LO", "Dr Smith")])
        frame.MRTimingAndRelatedParametersSequence = Sequence([xa])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    for i, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        inner = frame[0x2005140F].value[0]
        assert inner[0x2005100E].value == pytest.approx(7.5 + i)   # Scale Slope kept
        assert 0x20051018 not in inner                              # Hardcopy Protocol (d) gone
        xa = frame.MRTimingAndRelatedParametersSequence[0]
        assert xa[0x00211104].value == 62.5 * i and xa[0x0021111C].value == 1
        assert 0x002111EE not in xa


# ---- dispositions k, h, o, oi, d ---------------------------------------------------------------

def test_kb_dispositions_hash_offset_offset_integer_delete(guidelines):
    ds = _mr()
    uid = "1.2.840.113619.2.55.3.1234.5678"
    _private(ds, 0x0009, 0x10, "GEMS_PETD_01", [
        (0x97, "UI", uid),                       # h: Trans Scan ID
        (0x0D, "DT", "20240115101500"),          # o: Scan Date Time
        (0x37, "LO", "batch 2"),                 # k: Batch Description
    ])
    _private(ds, 0x0009, 0x12, "GEMS_IDEN_01", [(0x27, "SL", 1705313700)])   # oi: seconds since 1970
    _private(ds, 0x0019, 0x10, "SIEMENS MR HEADER", [(0x08, "CS", "IMAGE NUM 4")])  # d
    ds = read_back_as_file(ds)
    ctx = _ctx(guidelines)
    engine.deidentify(ds, ctx)
    offset = ctx.moment_offset  # days and seconds (time of day moves too)
    assert ds[0x00091097].value == ctx.mapper.uid(uid) != uid
    assert ds[0x0009100D].value == shift_value("DT", "20240115101500", offset) != "20240115101500"
    assert ds[0x00091037].value == "batch 2"
    assert ds[0x00091227].value == 1705313700 + offset.days * 86400 + offset.seconds
    assert 0x00191008 not in ds


def test_kb_offset_dates_removed_when_dates_are_not_kept(guidelines):
    ds = _mr()
    _private(ds, 0x0009, 0x10, "GEMS_PETD_01", [(0x0D, "DT", "20240115101500")])
    _private(ds, 0x0009, 0x12, "GEMS_IDEN_01", [(0x27, "SL", 1705313700)])
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines, retain_long_modified_dates=False))
    assert 0x0009100D not in ds and 0x00091227 not in ds


def test_private_data_all_removed_without_retain_safe_private(guidelines):
    ds = _mr()
    _private(ds, 0x0019, 0x10, "SIEMENS MR HEADER", [(0x0A, "US", 60)])
    engine.deidentify(ds, _ctx(guidelines, retain_safe_private=False))
    assert not any(e.tag.is_private for e in ds)


def test_kept_private_text_with_phi_shape_is_removed(guidelines):
    ds = _mr()
    _private(ds, 0x0009, 0x10, "GEMS_PETD_01", [(0x37, "LO", "call 555 0100 2345")])   # k, but a phone number
    engine.deidentify(ds, _ctx(guidelines))
    assert 0x00091037 not in ds


def test_research_table_number_check(guidelines):
    """A research row that expects numbers deletes a value that is not one."""
    research = gl.parse_private_table(
        "private_creator,tag,name,vr,disposition,check,reason\n"
        'ACME MR 1,"(0019,xx29)",slice times,DS,k,number,slice timing\n', gl.RESEARCH_PRIVATE_FILE)
    g = dataclasses.replace(guidelines, safe_private={**guidelines.safe_private, **research})
    good, text, bad = _mr(), _mr(), _mr()
    _private(good, 0x0019, 0x10, "ACME MR 1", [(0x29, "DS", ["0", "62.5", "125"])])
    _private(text, 0x0019, 0x10, "ACME MR 1", [(0x29, "LO", "62.5")])     # a vendor writing numbers as LO
    _private(bad, 0x0019, 0x10, "ACME MR 1", [(0x29, "LO", "DOE")])
    for ds in (good, text, bad):
        engine.deidentify(ds, _ctx(g))
    assert [float(v) for v in good[0x00191029].value] == [0, 62.5, 125]
    assert text[0x00191029].value == "62.5"
    assert 0x00191029 not in bad


@pytest.mark.parametrize("row, message", [
    ('ACME,"(0019,xx29)",x,DS,q,number,r', "disposition"),
    ('ACME,"(0019,xx29)",x,PN,k,number,r', "numeric VR"),
    ('ACME,"(0019,xx29)",x,DS,k,number,', "reason"),
    ('ACME,"(0018,xx29)",x,DS,k,number,r', "private tag"),
    ('ACME,"(0019,xx29)",x,DS,k,sometimes,r', "check"),
])
def test_research_table_is_validated(row, message):
    with pytest.raises(gl.GuidelineError, match=message):
        gl.parse_private_table("private_creator,tag,name,vr,disposition,check,reason\n" + row + "\n",
                               gl.RESEARCH_PRIVATE_FILE)


def test_bundled_private_tables(guidelines):
    sp = guidelines.safe_private
    # E.3.10-1 wins over TCIA where they differ (TCIA deletes the UN form of this one)
    assert guidelines.safe_private_entry("Philips Imaging DD 001", 0x2001, 0x1004).source == "E.3.10-1"
    # the knowledge base adds what E.3.10-1 does not list
    assert guidelines.safe_private_entry("SIEMENS MR HEADER", 0x0019, 0x1029).disposition == "k"
    assert guidelines.safe_private_entry("GEMS_ACQU_01", 0x0019, 0x10BB).disposition == "k"
    # deleted where neither keeps it; the delete rows are there to read but keep nothing
    assert guidelines.private_entry("SIEMENS MR HEADER", 0x0019, 0x1008).disposition == "d"
    assert guidelines.safe_private_entry("SIEMENS MR HEADER", 0x0019, 0x1008) is None
    assert guidelines.safe_private_entry("NO SUCH CREATOR", 0x0019, 0x1008) is None
    assert {e.disposition for e in sp.values()} == {"k", "h", "o", "oi", "d"}
    # every research row has a reason and a check
    research = [e for e in sp.values() if e.source == gl.RESEARCH_PRIVATE_FILE]
    assert research and all(e.check for e in research)


# ---- Siemens CSA headers -----------------------------------------------------------------------

ASCCONV = (b'<XProtocol> { <Name> "PhoenixMetaProtocol" <ParamString."Operator"> { "Dr Who" } }\n'
           b"### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51130001 ###\n"
           b'tSequenceFileName\t = \t""%SiemensSeq%\\ep2d_bold""\n'
           b'tProtocolName\t = \t""DOE JOHN 19610203""\n'
           b"sKSpace.ucPhasePartialFourier\t = \t0x10\n"
           b"sPat.lAccelFactPE\t = \t2\n"
           b"sSliceArray.asSlice[0].dThickness\t = \t3.0\n"
           b'sWipMemBlock.tFree\t = \t""scanned by jsmith""\n'
           b"### ASCCONV END ###\n")


def test_csa_cleaner_keeps_numbers_and_technical_codes_only():
    blob = csa_header([("NumberOfImagesInMosaic", "US", [b"60      \0"]),
                 ("MosaicRefAcqTimes", "FD", [b"0.00000000\0", b"1030.00000000\0"]),
                 ("ImaCoilString", "LO", [b"HEA;HEP\0"]),
                 ("UsedPatientWeight", "IS", [b"82      \0"]),
                 ("SomeComment", "LT", [b"patient John Doe was anxious\0"]),
                 ("MrPhoenixProtocol", "UN", [ASCCONV + b"\0"])])
    cleaned = clean_csa(blob)
    _, tags = parse_csa(cleaned)
    values = {t["name"]: [v.split(b"\0")[0] for *_, v in t["items"]] for t in tags}
    assert values["NumberOfImagesInMosaic"] == [b"60      "]
    assert values["MosaicRefAcqTimes"] == [b"0.00000000", b"1030.00000000"]
    assert values["ImaCoilString"] == [b"HEA;HEP"]
    assert values["UsedPatientWeight"] == [b""] and values["SomeComment"] == [b""]
    protocol = values["MrPhoenixProtocol"][0].decode()
    assert "### ASCCONV BEGIN" in protocol and "### ASCCONV END" in protocol
    assert "ep2d_bold" in protocol and "sPat.lAccelFactPE\t = \t2" in protocol and "0x10" in protocol
    for gone in ("DOE", "Who", "jsmith", "XProtocol", "19610203"):
        assert gone not in protocol
    assert [t["name"] for t in tags] == ["NumberOfImagesInMosaic", "MosaicRefAcqTimes", "ImaCoilString",
                                         "UsedPatientWeight", "SomeComment", "MrPhoenixProtocol"]


def test_csa_leftover_bytes_after_nul_are_not_copied():
    """Scanners leave memory after the NUL of CSA tag names and values (a station name was seen)."""
    blob = bytearray(csa_header([("GSWDDataType", "SH", [b"predicted\0STATION77"]), ("NumberOfImagesInMosaic", "US", [b"60\0"])]))
    name_at = 16
    blob[name_at + len("GSWDDataType") + 1:name_at + len("GSWDDataType") + 10] = b"MRC35131\0"
    cleaned = clean_csa(bytes(blob))
    assert b"MRC35131" not in cleaned and b"STATION77" not in cleaned
    _, tags = parse_csa(cleaned)
    assert tags[0]["name"] == "GSWDDataType" and tags[0]["items"][0][3].startswith(b"predicted\0")


def test_csa_header_in_a_file_cleaned_or_dropped(guidelines):
    good = csa_header([("NumberOfImagesInMosaic", "US", [b"60\0"]), ("Comment", "LT", [b"DOE JOHN\0"])])
    ds = _mr()
    _private(ds, 0x0029, 0x10, "SIEMENS CSA HEADER", [(0x10, "OB", good), (0x20, "OB", b"garbage that is no CSA header")])
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert b"DOE" not in ds[0x00291010].value
    assert parse_csa(ds[0x00291010].value)[1][0]["items"][0][3].startswith(b"60")
    assert 0x00291020 not in ds


# ---- Clean Descriptors -------------------------------------------------------------------------

KEPT = ["t1_mprage_sag_p2_iso", "ep2d_bold_moco", "func-bold_task-fa_run-1", "Axial EPI-FMRI (Interleaved I to S)",
        "MR HEAD", "MR BRAIN T1 AX", "CT CHEST W/O CONTRAST", "Thorax 1.0 B31f", "DTI 2.0 iso b1000 30dir",
        "cmrr_mbep2d_bold_mb2", "Research^MCBI_TESTING", "HEAD^BRAIN", "SWI_Images", "AX FLAIR FS",
        "3D T1 MPRAGE 1mm", "fMRI_MB_asc", "dwi_AP_b0", "DelRec - WIP SOURCE - dwi"]


@pytest.mark.parametrize("text", KEPT)
def test_descriptors_keep_protocol_words_and_technical_tokens(guidelines, text):
    ids = Identifiers(patient_name_known=True)
    ids.add_name("DOE^JOHN")
    ids.add_exact("MRN1234567")
    assert clean_descriptor(text, guidelines.vocabulary, ids) == text


@pytest.mark.parametrize("text, expected", [
    ("Jones 1961-02-03 MRN1234567", ""),
    ("AX T2 PHI00081030", "AX T2"),
    ("Dr Smith knee", "knee"),
    ("Mr. Brown protocol", "protocol"),
    ("MR HEAD Dr Jones", "MR HEAD"),
    ("CHEST DOE", "CHEST"),
    ("John Smith T1", "T1"),
    ("Smith J. brain", "brain"),
    ("SMITH^JOHN T2", "T2"),
    ("HEAD^Harms", "HEAD"),
    ("head 555-123-4567", "head"),
    ("brain 03/02/2024 follow up", "brain follow up"),
    ("T1 mprage john.doe@example.org", "T1 mprage"),
    ("PHI1X0040A730 T1", "T1"),                 # ID-like: seven characters, four digits
    ("brain ACC12345", "brain"),                # five digits in a row
])
def test_descriptors_lose_what_identifies(guidelines, text, expected):
    ids = Identifiers(patient_name_known=True)
    ids.add_name("DOE^JOHN")
    ids.add_exact("MRN1234567")
    assert clean_descriptor(text, guidelines.vocabulary, ids) == expected


def test_series_description_kept_by_the_engine(guidelines):
    ds = _mr()
    ds.SeriesDescription = "t1_mprage_sag_p2_iso"
    ds.ProtocolName = "Axial EPI-FMRI (Interleaved I to S)"
    ds.StudyDescription = "MR HEAD"
    engine.deidentify(ds, _ctx(guidelines))
    assert ds.SeriesDescription == "t1_mprage_sag_p2_iso"
    assert ds.ProtocolName == "Axial EPI-FMRI (Interleaved I to S)"
    assert ds.StudyDescription == "MR HEAD"


# ---- SOP Class UIDs and well-known UIDs --------------------------------------------------------

def test_sop_class_uids_and_dicom_root_uids_kept(guidelines):
    vendor_class = "1.3.12.2.1107.5.9.1"          # Siemens CSA Non-Image Storage
    ds = _mr(vendor_class)
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.3.46.670589.11.0.0.12.4"   # Philips private MR
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.7"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00180000 | 0x9999, "UI", "1.2.840.10008.5.1.4.1.1.4")    # unknown public UI, DICOM root
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.99.8"
    engine.deidentify(ds, _ctx(guidelines))
    assert ds.SOPClassUID == vendor_class
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.3.46.670589.11.0.0.12.4"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert ds.SOPInstanceUID.startswith("2.25.") and ds.FrameOfReferenceUID.startswith("2.25.")
    assert engine.new_file_meta(ds, "1.2.840.10008.1.2.1").MediaStorageSOPClassUID == vendor_class
    assert engine.uid_is_kept(0x00200052, "1.2.840.10008.1.4.1.1")  # well-known frame of reference
    assert not engine.uid_is_kept(0x00200052, "1.2.826.0.1.3680043.99.8")


def test_private_sequence_items_without_creator_read_the_sequence_creator(guidelines):
    """UIH grid images: per-slice items of a private sequence carry private elements but no creator."""
    ds = _mr()
    ds.Manufacturer = "UIH"
    items = []
    for i in range(3):
        item = Dataset()
        item.ImagePositionPatient = [0, 0, float(i)]
        item.add_new(0x0065100F, "SH", "F4.7")                       # partial Fourier (token)
        item.add_new(0x00651029, "SH", f"0.{i}2")                    # slice time (number)
        item.add_new(0x00651077, "LO", "DOE JOHN")                   # on no list
        items.append(item)
    _private(ds, 0x0065, 0x10, "Image Private Header", [(0x50, "DS", "3"), (0x51, "SQ", Sequence(items)),
                                                         (0x09, "FD", 1000.0), (0x37, "FD", [0.27, 0.69, -0.67])])
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert ds[0x00651050].value == 3 and ds[0x00651009].value == 1000.0
    for i, item in enumerate(ds[0x00651051].value):
        assert item[0x0065100F].value == "F4.7" and item[0x00651029].value == f"0.{i}2"
        assert 0x00651077 not in item


def test_ge_protocol_block_reduced_to_numbers_and_codes(guidelines):
    import gzip
    from deidkit.csa import clean_ge_protocol
    text = ('SEDESC "John Doe brain"\nPDGMSTR "Left Motor"\nSLICEORDER "1"\nVIEWORDER "1"\nNOSLC "32"\n'
            'IOPT "EPI, Asset, FMRI"\nTR "2000.0"\nMULTIBVALUE "1000.0;"\nCLINICALCOIL "C5RTZqs0UNDe+JV#1q0"\n')
    packed = gzip.compress(text.encode())
    block = struct.pack("<I", len(packed)) + packed
    ds = _mr()
    _private(ds, 0x0025, 0x10, "GEMS_SERS_01", [(0x1B, "OB", block + b"\0" * (len(block) % 2))])
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    out = ds[0x0025101B].value
    kept = gzip.decompress(out[4:4 + struct.unpack("<I", out[:4])[0]]).decode()
    assert 'SLICEORDER "1"' in kept and 'NOSLC "32"' in kept and 'TR "2000.0"' in kept
    assert 'IOPT "EPI, Asset, FMRI"' in kept and 'MULTIBVALUE "1000.0;"' in kept
    assert "Doe" not in kept and "Motor" not in kept and "CLINICALCOIL" not in kept
    assert clean_ge_protocol(b"\x10\x00\x00\x00not gzip at all") is None
    assert clean_ge_protocol(block) == clean_ge_protocol(block)          # deterministic bytes


def test_siemens_xa_protocol_text_cleaned(guidelines):
    ds = _mr("1.2.840.10008.5.1.4.1.1.4.1")
    shared = Dataset()
    _private(shared, 0x0021, 0x10, "SIEMENS MR SDS 01", [(0x19, "OB", ASCCONV), (0x5A, "CS", "EP"),
                                                          (0x5C, "CS", ["PFP", "FS"])])
    ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    ds.SharedFunctionalGroupsSequence[0].add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    ds.SharedFunctionalGroupsSequence[0].add_new(0x002110FE, "SQ", Sequence([shared]))
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    kept = ds.SharedFunctionalGroupsSequence[0][0x002110FE].value[0]
    text = kept[0x00211019].value.decode()
    assert text.startswith("\n### ASCCONV BEGIN") and "sPat.lAccelFactPE\t = \t2" in text
    assert "DOE" not in text and "jsmith" not in text and "Who" not in text
    assert kept[0x0021105A].value == "EP" and list(kept[0x0021105C].value) == ["PFP", "FS"]


def test_descriptors_without_a_known_patient_name_keep_known_words_only(guidelines):
    """A damaged header without Patient's Name: a surname cannot be told from a protocol word."""
    ids = Identifiers()
    ids.add_name("SMITH^GREGORY")          # a physician's name, not the patient's
    assert clean_descriptor("CT CHEST ZEBRAFINCH", guidelines.vocabulary, ids) == "CT CHEST"


@pytest.mark.parametrize("value", ["Minimum", "Equally Spaced", "2000"])
def test_ge_protocol_block_keeps_delay_after_acquisition(value):
    """DELACQ (delay after acquisition) is an acquisition parameter: dcm2niix derives the repetition
    time of GE multiphase fMRI from it (dcm_qa_ge 5_fMRI_Multiphase: TR 1 s became 3 s without it)."""
    import gzip
    from deidkit.csa import clean_ge_protocol
    text = f'SEDESC "John Doe brain"\nDELACQ "{value}"\nTR "1000.0"\n'
    packed = gzip.compress(text.encode())
    out = clean_ge_protocol(struct.pack("<I", len(packed)) + packed)
    kept = gzip.decompress(out[4:4 + struct.unpack("<I", out[:4])[0]]).decode()
    assert f'DELACQ "{value}"' in kept and "Doe" not in kept
