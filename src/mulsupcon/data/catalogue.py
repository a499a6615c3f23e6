"""The catalogue: what each registered dataset is, where its files live, their URLs, sizes and sha256.

Every file-backed dataset lists its files with the path inside the data home, the public URL, byte
size and sha256. The data-home layout is exactly that of ``../shared/data`` (so
``MULSUPCON_DATA=../shared/data`` works as is): ``<home>/<dataset folder>/<file name>``.

Sources of the entries:

* Mulan files: ``tsoumakas/mulan`` @ 43f6389095ad71984264db4387a8074b22bc7d4a, folder
  ``data/multi-label/<dataset>/`` (size/sha256 from ``shared/data/MANIFEST.tsv``).
* MEKA files (``*.arff.bz2``): ``Waikato/meka`` @ f9ffe231e06ebaa75b4a95c5cdeb737419731621,
  ``src/main/data/``.
* The MulSupCon authors' yeast HDF5 split: ``williamzhangsjtu/MulSupCon`` @ 42b23028..., ``data/``.
* emotions, enron, birds, mediamill, bookmarks: ``mrapp-ke/Boomer-Datasets`` @
  f7e13d57a83f95c00098252641d69f78a8d0c204. Those files are Git LFS objects, so their URL is the
  ``media.githubusercontent.com`` one (the raw URL would return the LFS pointer). Only their size
  and sha256 (the LFS oid, from ``shared/data/boomer_lfs_pointers.txt``) are known here: the files
  themselves have not been read by this project.

Readers (``DatasetSpec.reader``): ``"mulan"`` (ARFF + Mulan label XML), ``"meka"`` (labels are the
first n attributes, ``-C n`` in the relation name), ``"arff-last"`` (labels are the last
``n_labels`` attributes), ``"hdf5"`` (``feature``/``target`` datasets), or any callable
``loader(spec, data_home, options) -> SourceParts`` (generated data, the image sets of
:mod:`.image_datasets`). The register/get/load API over these entries is :mod:`.registry`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .splits import DEFAULT_TEST_FRACTION, SourceParts

DATA_HOME_ENV = "MULSUPCON_DATA"


def get_data_home(data_home: str | Path | None = None) -> Path:
    """The root folder of dataset files.

    Precedence: the ``data_home`` argument, then the ``MULSUPCON_DATA`` environment variable (if
    set and non-empty), then ``$XDG_CACHE_HOME/mulsupcon`` (``~/.cache/mulsupcon`` when
    ``XDG_CACHE_HOME`` is unset). ``~`` is expanded. The folder is not created here.
    """
    if data_home is not None and str(data_home) != "":
        return Path(data_home).expanduser()
    env = os.environ.get(DATA_HOME_ENV, "")
    if env:
        return Path(env).expanduser()
    return user_cache_dir()


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mulsupcon`` (``~/.cache/mulsupcon`` when ``XDG_CACHE_HOME`` is unset)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "mulsupcon"


@dataclass(frozen=True)
class ReadOptions:
    """How files are turned into arrays where that is a choice (images read from files).

    Attributes:
        image_size: side of the stored (cached) images; None = 224 (the paper's).
        cache_dir: folder of the decoded-image caches; None = ``$MULSUPCON_CACHE`` or the user cache.
        allow_missing: read missing feature values as NaN (``dataset.missing``: ``mean``, ``median`` or
            ``most_frequent`` fills them in later) instead of refusing them.
        skip_corrupt: leave out images that are missing or cannot be decoded, with one warning giving the
            count (``dataset.skip_corrupt``), instead of refusing the data.
    """

    image_size: Optional[int] = None
    cache_dir: Optional[str] = None
    allow_missing: bool = False
    skip_corrupt: bool = False


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        path: path inside the data home, "/"-separated (e.g. ``"yeast/yeast-train.arff"``).
        url: public location.
        size: byte size, or ``None`` if unknown (then ``note`` says why).
        sha256: hex digest, or ``None`` if unknown (then ``note`` says why).
        note: provenance remarks.
    """

    path: str
    url: str
    size: int | None
    sha256: str | None
    note: str = ""


Loader = Callable[["DatasetSpec", Path, ReadOptions], SourceParts]


@dataclass
class DatasetSpec:
    """A registry entry.

    Attributes:
        name: registry key (``load(name)``).
        description: one line.
        files: the files :func:`load` needs (empty for generated data).
        n_labels, n_features: expected label count / feature columns as loaded (nominal attributes
            one-hot encoded by the reader); ``None`` if not known in advance.
        n_train, n_test, n_samples: expected row counts of the official parts / of all rows.
        reader: ``"mulan"``, ``"meka"``, ``"arff-last"``, ``"hdf5"`` or a loader callable.
        read_args: reader arguments: file paths (relative to the data home) under ``"train"``,
            ``"test"``, ``"val"``, ``"all"``, ``"xml"``; ``"n_train"`` (first rows of an ``all`` file
            that form the official train part); ``"label_names"`` (hdf5).
        official_split: whether the files define train/test (else test is carved, fraction
            ``test_fraction`` with a fixed seed).
        citation: reference for the data.
        url: home page of the data.
        notes: caveats (label conventions, provenance, known quirks).
        test_fraction: share carved as test when there is no official split.
        kind: ``"vector"`` or ``"image"``.
        folder: for data read from a folder of the data home without a file list (the image sets):
            that folder, so that listings can say whether it is there.
        sample_shape: the shape of one sample as loaded, when it is fixed (``(1, 24, 24)`` for the
            multidigits images; file-based image sets are cached at ``dataset.image_size``).
    """

    name: str
    description: str
    files: tuple[DataFile, ...] = ()
    n_labels: int | None = None
    n_features: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    n_samples: int | None = None
    reader: Union[str, Loader] = "mulan"
    read_args: dict[str, Any] = field(default_factory=dict)
    official_split: bool = True
    citation: str = ""
    url: str = ""
    notes: str = ""
    test_fraction: float = DEFAULT_TEST_FRACTION
    kind: str = "vector"
    folder: str = ""
    sample_shape: Optional[tuple[int, ...]] = None

    @property
    def total_bytes(self) -> int | None:
        """Sum of the file sizes (``None`` if any size is unknown)."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else int(sum(sizes))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ sources
_MULAN_REPO, _MULAN_COMMIT = "tsoumakas/mulan", "43f6389095ad71984264db4387a8074b22bc7d4a"
_MEKA_REPO, _MEKA_COMMIT = "Waikato/meka", "f9ffe231e06ebaa75b4a95c5cdeb737419731621"
_MSC_REPO, _MSC_COMMIT = "williamzhangsjtu/MulSupCon", "42b23028785203123b673b8a28f5391b9d9726be"
_BOOMER_REPO, _BOOMER_COMMIT = "mrapp-ke/Boomer-Datasets", "f7e13d57a83f95c00098252641d69f78a8d0c204"


def _raw(repo: str, commit: str, repo_path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{repo_path}"


def _mulan(path: str, size: int, sha256: str) -> DataFile:
    return DataFile(path, _raw(_MULAN_REPO, _MULAN_COMMIT, "data/multi-label/" + path), size, sha256)


def _meka(path: str, size: int, sha256: str) -> DataFile:
    return DataFile(path, _raw(_MEKA_REPO, _MEKA_COMMIT, "src/main/data/" + path.split("/")[-1]), size, sha256)


def _msc(path: str, size: int, sha256: str) -> DataFile:
    return DataFile(path, _raw(_MSC_REPO, _MSC_COMMIT, "data/" + path.split("/")[-1]), size, sha256)


def _boomer(path: str, size: int, sha256: str) -> DataFile:
    name = path.split("/")[-1]
    return DataFile(
        path,
        f"https://media.githubusercontent.com/media/{_BOOMER_REPO}/{_BOOMER_COMMIT}/{name}",
        size,
        sha256,
        note="Git LFS object: size and sha256 are the LFS pointer's; content not inspected here",
    )


_MULAN_URL = "http://mulan.sourceforge.net/datasets-mlc.html"
_MEKA_URL = "https://waikato.github.io/meka/datasets/"
_BOOMER_URL = "https://github.com/mrapp-ke/Boomer-Datasets"
_BOOMER_NOTE = (
    "Files from Boomer-Datasets (Git LFS, fetched from media.githubusercontent.com); only their size and "
    "sha256 are known to this project, the content was not inspected. Boomer files are Mulan-format ARFF "
    "(for yeast and bibtex they are byte-identical to Mulan's); the label XML is not registered (no known "
    "hash), so labels are taken as the LAST {n} attributes, the Mulan layout of this dataset (uncertain: "
    "a file with a different layout fails loudly, since non-0/1 label values are rejected). Boomer's "
    "train/test split may differ from Mulan's (it does for medical), so counts are not pinned."
)

CATALOGUE: list[DatasetSpec] = [
    DatasetSpec(
        name="yeast",
        description="Yeast gene functional classes (Elisseeff & Weston 2001), Mulan split",
        files=(
            _mulan("yeast/yeast-train.arff", 1501117, "e759dc991ff54694a4ff9c4314f3be0d6fd2b1994a4b563f57e416394c6aebbd"),
            _mulan("yeast/yeast-test.arff", 918515, "4aaac102bff9669a765bf0b378602e5cc8c3b181048282e2f003117b496d552a"),
            _mulan("yeast/yeast.xml", 526, "c3056cc26444b5158b1588d1b73bec9c45429e10f0957ad085903423cb81f247"),
        ),
        n_labels=14, n_features=103, n_train=1500, n_test=917,
        read_args={"train": "yeast/yeast-train.arff", "test": "yeast/yeast-test.arff", "xml": "yeast/yeast.xml"},
        citation="A. Elisseeff, J. Weston. A kernel method for multi-labelled classification. NIPS 2001.",
        url=_MULAN_URL,
    ),
    DatasetSpec(
        name="yeast-official",
        description="Yeast as split by the MulSupCon authors: 1200 train / 300 val / 917 test (HDF5)",
        files=(
            _msc("yeast/yeast_official_train.hdf5", 1125248, "88b9c53973bd79f5ba4cb2337f96fe9fefd0bd2d691b68932e773f9077b8dc84"),
            _msc("yeast/yeast_official_val.hdf5", 282848, "e77b9c9565b2dd4bb51eb3fd93a978d81eb55308c6229bb0313f740a53e4e8fc"),
            _msc("yeast/yeast_official_test.hdf5", 860360, "32d47bd36c49f672b139afbc6746e3b9e9e8fa4323009aedf9075c679e744ac3"),
        ),
        n_labels=14, n_features=103, n_train=1200, n_test=917, n_samples=2417,
        reader="hdf5",
        read_args={
            "train": "yeast/yeast_official_train.hdf5",
            "val": "yeast/yeast_official_val.hdf5",
            "test": "yeast/yeast_official_test.hdf5",
            # HDF5 column j is Mulan label Class(K[j]+1), K = [0,2,6,5,3,1,13,11,7,8,4,9,12,10].
            "label_names": [f"Class{k + 1}" for k in (0, 2, 6, 5, 3, 1, 13, 11, 7, 8, 4, 9, 12, 10)],
        },
        citation="P. Zhang, M. Wu. Multi-Label Supervised Contrastive Learning. AAAI 2024.",
        url="https://github.com/williamzhangsjtu/MulSupCon",
        notes=(
            "The authors' own split: train+val are the 1500 Mulan training rows shuffled and cut 1200/300, "
            "test is the Mulan test rows in order. LABEL COLUMNS ARE PERMUTED against Mulan's yeast: HDF5 "
            "column j is Mulan label Class(K[j]+1) with K = [0,2,6,5,3,1,13,11,7,8,4,9,12,10]; the label "
            "names given here carry the Mulan names in HDF5 column order. The official val part is used as "
            "is (val_fraction is ignored except 0, which merges val into train). yeast_official_trainval.hdf5 "
            "(= train then val) is not needed and not registered."
        ),
    ),
    DatasetSpec(
        name="yeast-meka",
        description="Yeast, MEKA's bzip2 ARFF (labels first); first 1500 rows = Mulan train",
        files=(_meka("yeast/Yeast.arff.bz2", 703814, "98da124ba009c4ee2f8323076d6ec13442e6eaedc66314e88f289375d3ef5ab5"),),
        n_labels=14, n_features=103, n_train=1500, n_test=917,
        reader="meka", read_args={"all": "yeast/Yeast.arff.bz2", "n_train": 1500},
        citation="A. Elisseeff, J. Weston. NIPS 2001.", url=_MEKA_URL,
        notes="Alternate copy of yeast; rows are the Mulan train rows followed by the test rows.",
    ),
    DatasetSpec(
        name="scene",
        description="Scene images (Boutell et al. 2004), Mulan split",
        files=(
            _mulan("scene/scene-train.arff", 3127968, "b53ba93bdf412de922e3960389bcee24744fa3e872ce610511fc1d750888b64d"),
            _mulan("scene/scene-test.arff", 3090742, "ea38d20296b3ff7e220f477a3b802a9bcb2d768881fe6ee163efbc97ea527a42"),
            _mulan("scene/scene.xml", 285, "55d8b247b949ad5c52e5a73d8c6775ec6e5469ce9682465b45b333b68ee4bcc5"),
        ),
        n_labels=6, n_features=294, n_train=1211, n_test=1196,
        read_args={"train": "scene/scene-train.arff", "test": "scene/scene-test.arff", "xml": "scene/scene.xml"},
        citation="M. R. Boutell, J. Luo, X. Shen, C. M. Brown. Learning multi-label scene classification. Pattern Recognition 2004.",
        url=_MULAN_URL,
    ),
    DatasetSpec(
        name="scene-meka",
        description="Scene, MEKA's bzip2 ARFF (labels first); first 1211 rows = Mulan train",
        files=(_meka("scene/Scene.arff.bz2", 1999024, "f560b40697d89803a6d260aa737e0879cf3699abb9a761f7cd3deab5c2a6d0a6"),),
        n_labels=6, n_features=294, n_train=1211, n_test=1196,
        reader="meka", read_args={"all": "scene/Scene.arff.bz2", "n_train": 1211},
        citation="M. R. Boutell et al. Pattern Recognition 2004.", url=_MEKA_URL,
        notes="Alternate copy of scene; rows are the Mulan train rows followed by the test rows.",
    ),
    DatasetSpec(
        name="delicious",
        description="del.icio.us web pages and tags (Tsoumakas et al. 2008), Mulan split, sparse",
        files=(
            _mulan("delicious/delicious-train.arff", 3056590, "030186cdb542ebdd32052fcdbb1ebe30115b3a22518c1b4b198c45eb827aebe1"),
            _mulan("delicious/delicious-test.arff", 757565, "2dfb01723a819914b0ca83361177ed413ce3f2169851d9f228d4692915d63944"),
            _mulan("delicious/delicious.xml", 34303, "4e0c0f93c7d86a39b9fca4aaefaa00e9428f2c80277732dfbf03ca48e2c14da2"),
        ),
        n_labels=983, n_features=500, n_train=12920, n_test=3185,
        read_args={"train": "delicious/delicious-train.arff", "test": "delicious/delicious-test.arff", "xml": "delicious/delicious.xml"},
        citation="G. Tsoumakas, I. Katakis, I. Vlahavas. Effective and efficient multilabel classification in domains with large number of labels. MMD 2008.",
        url=_MULAN_URL,
    ),
    DatasetSpec(
        name="bibtex",
        description="BibSonomy BibTeX entries and tags (Katakis et al. 2008), Mulan split, sparse",
        files=(
            _mulan("bibtex/bibtex-train.arff", 2292961, "8dcc9de6e0b2cebaec8c1f4fac78431adeeb73cfd3ab879b530a66d366e59174"),
            _mulan("bibtex/bibtex-test.arff", 1215637, "9b03329cde64d3f994bdf7fbbac3f3b10fe185c311cb9ae725475f59c7f3f922"),
            _mulan("bibtex/bibtex.xml", 5880, "08fe20013c1e75dcf1888c185f5187c95e76495b8518ce289b4d3afce38d1232"),
        ),
        n_labels=159, n_features=1836, n_train=4880, n_test=2515,
        read_args={"train": "bibtex/bibtex-train.arff", "test": "bibtex/bibtex-test.arff", "xml": "bibtex/bibtex.xml"},
        citation="I. Katakis, G. Tsoumakas, I. Vlahavas. Multilabel text classification for automated tag suggestion. ECML/PKDD Discovery Challenge 2008.",
        url=_MULAN_URL,
    ),
    DatasetSpec(
        name="medical",
        description="Clinical free text, ICD-9 codes (Pestian et al. 2007), Mulan split, sparse",
        files=(
            _mulan("medical/medical-train.arff", 69680, "c764f45756ab1c553b8b4eaaf5605a5610a43bbbcf37492d0f1a12bf9c9e2244"),
            _mulan("medical/medical-test.arff", 99124, "6be472e75a6c0b0916187f343a398011b1b26f8f0ddc682c575312ad3532f6c4"),
            _mulan("medical/medical.xml", 1818, "51fa9d5c09e48caff3f0a0c75db1c9aa85944f8e35451f3ad8bd56fc422286ce"),
        ),
        n_labels=45, n_features=1449, n_train=333, n_test=645,
        read_args={"train": "medical/medical-train.arff", "test": "medical/medical-test.arff", "xml": "medical/medical.xml"},
        citation="J. P. Pestian et al. A shared task involving multi-label classification of clinical free text. BioNLP 2007.",
        url=_MULAN_URL,
        notes="The relation name carries MEKA's '-C 45' but the labels are the LAST 45 attributes: read with the XML.",
    ),
    DatasetSpec(
        name="corel5k",
        description="Corel 5k images and keywords (Duygulu et al. 2002), Mulan split, sparse",
        files=(
            _mulan("corel5k/Corel5k-train-sparse.arff", 339535, "19eb253c447144bea74ffa86b4731a56022addae2ba7d0aab72ad07fdc02e9b3"),
            _mulan("corel5k/Corel5k-test-sparse.arff", 60876, "e8f8e9cd052c43ba7bdfdf99d242f461fc8c2a03163466d921e576887b51d8a7"),
            _mulan("corel5k/Corel5k.xml", 11222, "54ef6a6ccb7ca9b77524052b34b306d5d501661a5609b9d1cc7085b2b597679d"),
        ),
        n_labels=374, n_features=499, n_train=4500, n_test=500,
        read_args={"train": "corel5k/Corel5k-train-sparse.arff", "test": "corel5k/Corel5k-test-sparse.arff", "xml": "corel5k/Corel5k.xml"},
        citation="P. Duygulu, K. Barnard, N. de Freitas, D. Forsyth. Object recognition as machine translation. ECCV 2002.",
        url=_MULAN_URL,
        notes="Uses the sparse train/test files; the dense Corel5k-test.arff holds the same test rows.",
    ),
    DatasetSpec(
        name="tmc2007-500",
        description="SIAM TMC 2007 text (500 features), Mulan split, sparse",
        files=(
            _mulan("tmc2007/tmc2007-500-train.arff", 3152791, "edfe7b7615c6f80e54c92a214437610d1ae36560c5cc6c4253b51c434d258273"),
            _mulan("tmc2007/tmc2007-500-test.arff", 1054414, "b24f9c3f1eba77c9da0bbaff093ba41d331b7351be0167a8e1e3852c62e25e38"),
            _mulan("tmc2007/tmc2007-500.xml", 783, "cb6a67c8ae72fd9b47d89f77aa5b7f6cafb4ba9c20b1124c65a95a3f2caec38d"),
        ),
        n_labels=22, n_features=500, n_train=21519, n_test=7077,
        read_args={"train": "tmc2007/tmc2007-500-train.arff", "test": "tmc2007/tmc2007-500-test.arff", "xml": "tmc2007/tmc2007-500.xml"},
        citation="A. N. Srivastava, B. Zane-Ulman. Discovering recurring anomalies in text reports regarding complex space systems. IEEE Aerospace 2005.",
        url=_MULAN_URL,
    ),
    DatasetSpec(
        name="genbase",
        description="Protein families (Diplaris et al. 2005), Mulan split, nominal features",
        files=(
            _mulan("genbase/genbase-train.arff", 1714007, "37670db2c2b308a1c163d05501819526f1d65d659638ddfb76812d4ce384b5c6"),
            _mulan("genbase/genbase-test.arff", 758739, "0e988520bedab39aa3f23f08f646c769bcdb6f9119ee298fd92b37127b226a36"),
            _mulan("genbase/genbase.xml", 992, "198e8a1d7070e9603119e02e626cedc589db7577339b307b06f5192047b69eb9"),
        ),
        n_labels=27, n_features=2370, n_train=463, n_test=199,
        read_args={
            "train": "genbase/genbase-train.arff", "test": "genbase/genbase-test.arff", "xml": "genbase/genbase.xml",
            # A protein identifier (nominal, 662 values): one-hot it would be 662 ID columns that
            # only let a model memorise proteins, so it is dropped.
            "drop_attributes": ["protein"],
        },
        citation="S. Diplaris, G. Tsoumakas, P. Mitkas, I. Vlahavas. Protein classification with multiple algorithms. PCI 2005.",
        url=_MULAN_URL,
        notes=(
            "1186 attributes: a protein identifier (nominal with 662 values; DROPPED here, it is an ID, not a "
            "feature) and 1185 YES/NO motif attributes (one-hot by the reader: 2370 feature columns). "
            "Mulan's split repeats one protein in train and test."
        ),
    ),
    DatasetSpec(
        name="flags",
        description="Flag colours from country facts (Goncalves et al. 2013), Mulan split, mixed nominal/numeric",
        files=(
            _mulan("flags/flags-train.arff", 7707, "1861cdab7f8baf1aef6fb6198f304465ddfd99b7f9a435337c604119522df3c5"),
            _mulan("flags/flags-test.arff", 4218, "09f6136fae47dcc2f0f491efd6401a11072cbfb0bfbb2666c63b35bb06aeeb16"),
            _mulan("flags/flags.xml", 304, "7c9ed21a91b716b91f811323e20ee5a260ea2da62a5edcfeb1b91ec855a48f17"),
        ),
        n_labels=7, n_features=43, n_train=129, n_test=65,
        read_args={"train": "flags/flags-train.arff", "test": "flags/flags-test.arff", "xml": "flags/flags.xml"},
        citation="E. C. Goncalves, A. Plastino, A. A. Freitas. A genetic algorithm for optimizing the label ordering in multi-label classifier chains. ICTAI 2013.",
        url=_MULAN_URL,
        notes="19 attributes (10 numeric, 9 nominal); the reader one-hot encodes the multi-valued nominals: 43 feature columns.",
    ),
    DatasetSpec(
        name="cal500",
        description="CAL500 songs and 174 tags (Turnbull et al. 2008); no official split",
        files=(
            _mulan("cal500/cal500.arff", 492857, "cfe6097ba5fd6e8584e54911ab9783dcab34e898446b7c9370c71d477eae56d3"),
            _mulan("cal500/cal500.xml", 7901, "877e128531268d7661faa3e44f7bb43cbcda829c0895e49879168775b192728c"),
        ),
        n_labels=174, n_features=68, n_samples=502, official_split=False,
        read_args={"all": "cal500/cal500.arff", "xml": "cal500/cal500.xml"},
        citation="D. Turnbull, L. Barrington, D. Torres, G. Lanckriet. Semantic annotation and retrieval of music and sound effects. IEEE TASLP 2008.",
        url=_MULAN_URL,
        notes="No official split: 20% of rows are carved as test with the fixed seed 0 (splits.TEST_SPLIT_SEED).",
    ),
    DatasetSpec(
        name="foodtruck",
        description="Food-truck preferences survey (Rivolli et al. 2017); no official split",
        files=(
            _mulan("foodtruck/foodtruck.arff", 36991, "f69e028cd3427b009a2b3147d78e6c955bc43c9dc1434d23e589a206fa332be3"),
            _mulan("foodtruck/foodtruck.xml", 527, "a018e2a20480ef0c90c588ecc0bc4912f272a091fc26b00482377338e48b0c0d"),
        ),
        n_labels=12, n_features=32, n_samples=407, official_split=False,
        read_args={"all": "foodtruck/foodtruck.arff", "xml": "foodtruck/foodtruck.xml"},
        citation="A. Rivolli, L. C. Parker, A. C. P. L. F. de Carvalho. Food truck recommendation using multi-label classification. EPIA 2017.",
        url=_MULAN_URL,
        notes=(
            "No official split: 20% of rows are carved as test with the fixed seed 0 (splits.TEST_SPLIT_SEED). "
            "21 attributes (17 numeric, 4 nominal, one-hot by the reader): 32 feature columns."
        ),
    ),
    DatasetSpec(
        name="imdb",
        description="IMDB plot summaries and genres (Read 2010), MEKA bzip2 ARFF, sparse; no official split",
        files=(_meka("imdb/Imdb.arff.bz2", 2422401, "edc1eb0acbcd3d5864eb61f1ef9c13bd21fc098fb68412434ca06c07a10e1122"),),
        n_labels=28, n_features=1001, n_samples=120919, official_split=False,
        reader="meka", read_args={"all": "imdb/Imdb.arff.bz2"},
        citation="J. Read. Scalable multi-label classification. PhD thesis, University of Waikato, 2010.",
        url=_MEKA_URL,
        notes="Large (120919 rows): parsing takes a while. 20% carved as test with the fixed seed 0.",
    ),
]

# Boomer-only datasets: (name, description, n_labels, n_features, Mulan train/test counts, citation, sizes/hashes)
_BOOMER = [
    ("emotions", "Music emotions (Trohidis et al. 2008)", 6, 72, (391, 202),
     "K. Trohidis, G. Tsoumakas, G. Kalliris, I. Vlahavas. Multi-label classification of music into emotions. ISMIR 2008.",
     (252080, "bbe704106c79bb8fb99c1d1d2e9bde081d6a2daeb01f100862f11fd91a3c1f98"),
     (132007, "f13d4b746b7b5c8eb484bd751d6ac463d4560dff998a93516a5c1fe35daf6c8f")),
    ("enron", "Enron e-mails and folders (Read et al. 2008)", 53, 1001, (1123, 579),
     "J. Read, B. Pfahringer, G. Holmes. Multi-label classification using ensembles of pruned sets. ICDM 2008.",
     (607799, "2988cefc1cdf7a8004a20ef84615cc8fa1b5d7434c16687283b41454e2d9d194"),
     (324140, "2f3aad54a8f54caaab4ab01246fe9dd385ba944a2633028f52747b57eac5474e")),
    ("birds", "Bird species in audio clips (Briggs et al. 2013)", 19, 260, (322, 323),
     "F. Briggs et al. The 9th annual MLSP competition. MLSP 2013.",
     (539367, "8f215db6ee163149901e753977f631ba8bea0e0e8e1abc42b234414822f8ae36"),
     (540883, "51ba6326d65ccdd7c755b6461280eb6d2769c7f59d8e12fd4250f91e6ca28326")),
    ("mediamill", "TRECVID video concepts (Snoek et al. 2006)", 101, 120, (30993, 12914),
     "C. G. M. Snoek et al. The challenge problem for automated detection of 101 semantic concepts in multimedia. ACM MM 2006.",
     (37326673, "cc03255aff4ed26a56bf0607c194f1257a36eba4816b2733bbf384db30530475"),
     (18387794, "7dec9a71c8eaa2ec2f7d911d9bc52f8c4a3025100a2693b4a4acf0c52c2dfafe")),
    ("bookmarks", "BibSonomy bookmarks and tags (Katakis et al. 2008)", 208, 2150, None,
     "I. Katakis, G. Tsoumakas, I. Vlahavas. ECML/PKDD Discovery Challenge 2008.",
     (49035720, "01027d75e74b48799fd83bc81242c6e27a615e0c19e486723462e4b413412983"),
     (24296394, "cab9015f9fb274ce95fcf4f6a300b6e09347ba10fc25aa11ea17fe454ac714d3")),
]
for _name, _desc, _nl, _nf, _counts, _cite, _tr, _te in _BOOMER:
    _train_path, _test_path = f"{_name}/{_name}_training.arff", f"{_name}/{_name}_test.arff"
    _mulan_counts = f" Mulan's split has {_counts[0]} train / {_counts[1]} test rows." if _counts else ""
    CATALOGUE.append(
        DatasetSpec(
            name=_name,
            description=f"{_desc}, Boomer-Datasets train/test split",
            files=(_boomer(_train_path, *_tr), _boomer(_test_path, *_te)),
            n_labels=_nl, n_features=_nf,
            reader="arff-last",
            read_args={"train": _train_path, "test": _test_path},
            citation=_cite,
            url=_BOOMER_URL,
            notes=_BOOMER_NOTE.format(n=_nl) + _mulan_counts,
        )
    )


def _multidigits_loader(variant: str) -> Loader:
    def load(spec: DatasetSpec, data_home: Path, options: ReadOptions) -> SourceParts:
        from .multidigits import (
            make_multidigits,  # lazy: needs scikit-learn's bundled digits
        )

        s = make_multidigits(seed=0, variant=variant)
        return SourceParts(train=s.train, val=s.val, test=s.test)

    return load


_MULTIDIGITS_CITATION = "Built by mulsupcon from sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)."
_MULTIDIGITS_NOTE = (
    "Generated from scikit-learn's load_digits (no files, nothing downloaded). The data are fixed "
    "(generator seed 0); the run seed does not change them. Train/val/test come from disjoint source "
    "scans, so the generator's val part is used as an official val (val_fraction is ignored except 0)."
)
CATALOGUE.append(
    DatasetSpec(
        name="multidigits",
        description="Multi-digit canvases built from sklearn digits (10 labels: which digits appear); images 1x24x24",
        n_labels=10, n_features=576, n_train=3000, n_test=1000, n_samples=5000,
        reader=_multidigits_loader("digits"),
        citation=_MULTIDIGITS_CITATION,
        notes=_MULTIDIGITS_NOTE, kind="image", sample_shape=(1, 24, 24),
    )
)


def multidigits_variants() -> list[DatasetSpec]:
    """``multidigits-<variant>`` entries for the generator's variants (empty if its module does not import)."""
    try:
        from .multidigits import VARIANTS
    except Exception:  # pragma: no cover - the generator needs scikit-learn's bundled digits
        return []
    out = []
    for variant, what in VARIANTS.items():
        name = f"multidigits-{variant}"
        out.append(DatasetSpec(
            name=name,
            description=f"multidigits, variant '{variant}': {what}",
            n_labels=10, n_features=576, n_train=3000, n_test=1000, n_samples=5000,
            reader=_multidigits_loader(variant),
            citation=_MULTIDIGITS_CITATION,
            notes=_MULTIDIGITS_NOTE, kind="image", sample_shape=(1, 24, 24),
        ))
    return out
