"""Regenerate guidelines/descriptor_vocabulary.txt: words allowed to stay in cleaned descriptors.

Clean Descriptors (PS3.15 C) keeps only words "known not to contain identifying information".
The list = a curated core of imaging words + anatomy/imaging words from the DICOM Content
Mapping Resource (PS3.16 CIDs, as shipped in pydicom). Run: python tools/make_vocabulary.py
"""
from __future__ import annotations

import re
from pathlib import Path

import pydicom.sr._cid_dict as cid_dict
import pydicom.sr._concepts_dict as concepts_dict

CURATED = """
ct mr mri pet spect us xa rf cr dx mg nm ot sc pr sr ko seg rt rtstruct rtdose rtplan pt
ax axial cor coronal sag sagittal obl oblique tra trans transverse 2d 3d 4d mip minip mpr vr
t1 t2 t2* pd flair stir dwi adc dti swi gre tse fse se ir epi spgr mprage space vibe haste
bold asl perf perfusion tof mra mrv cta ctv angio angiography venography localizer localiser
scout topogram survey tracker bolus test dose report series study exam examination
w wo w/o with without and or of the in on at to for plus pre post delayed delay arterial
venous portal phase early late equilibrium nephrographic excretory native non contrast iv
oral enhanced unenhanced routine standard protocol low high dose ldct hrct helical spiral
thin thick slice slices mm cm ms kv kvp mas sec min recon reconstruction kernel sharp
smooth soft tissue bone lung lungs mediastinum window level wide narrow filter iterative
chest thorax abdomen pelvis head neck brain spine cervical thoracic lumbar sacral extremity
upper lower left right bilateral lt rt l r bil ap pa lat lateral obl frontal ll rl lao rao
lpo rpo cc mlo xccl ml lm spot mag magnification tomo tomosynthesis cview synth synthetic
screening diagnostic follow up followup fu biopsy guided guidance needle stereo stereotactic
cardiac heart coronary calcium score scoring gated ecg triggered retro prospective systolic
diastolic cine function flow velocity phase contrast tagging late enhancement lge
whole body wb limited complete full half single double triple multi multiphase dual energy
spectral mono monoenergetic iodine water fat sat suppression fs dixon in opp opposed
liver kidney kidneys renal adrenal pancreas spleen bladder prostate uterus ovary breast
breasts shoulder elbow wrist hand hip knee ankle foot feet femur tibia humerus skull sinus
sinuses orbit orbits temporal facial face mandible jaw dental teeth iac pituitary sella
angio aorta aortic carotid carotids circle willis pulmonary embolism pe runoff run off
urogram urography enterography colonography cholangiography mrcp mrcp2d mrcp3d
original primary secondary derived processed reformat reformatted mpr curved average
avg sum subtraction sub diff difference map maps fused fusion ac nac attenuation corrected
uncorrected static dynamic gated list mode frame frames image images view views
stack series1 ssfp trufisp fiesta balanced b0 b50 b100 b500 b800 b1000 b1500 b2000 trace
exp eadc fa md tensor colfa fibers tract tractography resting state task fmri
1st 2nd 3rd 4th first second third fourth fifth final prelim preliminary
no yes none other unknown normal abnormal
research clinical testing qa phantom physics service neuro neuroradiology msk body vascular cardio
interleaved ascending descending sequential mosaic moco localizer scout loc survey calibration
shim fieldmap field gradient echo spin inversion recovery diffusion weighted tensor resting
task rest run acq dir rec bold sbref mbep2d cmrr multiband accelerated grappa sense asset
isotropic iso resolution hires lowres highres magnitude mag phase real imaginary
advanced basic sequence sequences multiphase multi-phase single-shot singleshot multishot segmented
delay delayed group groups timing slice slices interleave ascending descending asc desc int seq
volume volumes volumetric navigator navigated motion corrected correction correct uncorrected
reference ref calibration prescan noise mapping map maps quantitative quant relaxometry
susceptibility weighted weighting spectroscopy spectro svs csi mrs chemical shift metabolite
water fat only silent quiet fast faster turbo rapid ultrafast short long tau echo echoes
dual triple multi-echo multiecho single view views plane planes oblique reformatted reformats
source raw original derived processed filtered unfiltered normalized norm prenorm
high low medium resolution contrast enhanced pre post gad gadolinium bolus dynamic
perfusion permeability flow velocity encoded encoding phase-contrast pc angiography
tracking tracker track test trial sample demo example protocol protocols package exam
brain head neck spine whole body cardiac heart breast abdominal pelvic prostate knee
functional anatomical anatomic structural physiological physio respiratory respiration triggered
breath hold breathhold free breathing gated ungated retrospective prospective
default custom user clinical research study series acquisition acquired reconstruction
left right anterior posterior superior inferior medial lateral caudal cranial
""".split()

CID_NAME_RE = re.compile(r"Anatom|Region|Laterality|View|Contrast|Radiograph|Mammograph|Modality|"
                         r"Orientation|Position|Artery|Vein|Vessel|Organ|Bone|Muscle|Lymph|Cardiac|Brain|"
                         r"Lung|Liver|Kidney|Joint|Spine|Heart|Abdom|Thora|Pelvi|Breast|Neck|Head")
EXCLUDE = {"the", "of", "and"}  # harmless anyway; kept via CURATED


def cid_words() -> set[str]:
    meanings: dict[str, dict[str, str]] = {}
    for scheme, by_keyword in concepts_dict.concepts.items():
        for keyword, codes in by_keyword.items():
            for _code, (meaning, _cids) in codes.items():
                meanings.setdefault(scheme, {})[keyword] = meaning
    words: set[str] = set()
    for cid, name in cid_dict.name_for_cid.items():
        if not CID_NAME_RE.search(name):
            continue
        for scheme, keywords in cid_dict.cid_concepts.get(cid, {}).items():
            for keyword in keywords:
                meaning = meanings.get(scheme, {}).get(keyword, "")
                for w in re.findall(r"[A-Za-z][A-Za-z]+", meaning):
                    if len(w) >= 4 and not w[0].isupper() or len(w) >= 4 and meaning.split()[0] == w:
                        words.add(w.lower())
    return words


if __name__ == "__main__":
    words = sorted(set(w.lower() for w in CURATED) | cid_words())
    out = Path(__file__).resolve().parents[1] / "guidelines" / "descriptor_vocabulary.txt"
    header = ("# Words that Clean Descriptors may keep in free text (one per line, lower case).\n"
              "# Anything else in a cleaned descriptor is dropped; a value left with no word is\n"
              "# removed. Generated by tools/make_vocabulary.py (curated imaging words + PS3.16\n"
              "# anatomy and imaging CIDs). Add words by hand if needed; never add names.\n")
    out.write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    print(len(words), "words")
