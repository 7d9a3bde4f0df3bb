from orisel.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainSpec(_message.Message):
    __slots__ = ("model", "epochs", "batch_size", "lr", "seed", "label_corruption", "train_subset", "data", "epochs_per_segment", "val_size", "population", "amp", "tf32", "compile", "optimizer", "momentum", "weight_decay", "augment", "max_shift", "hflip", "fill", "early_checkpoint_every", "early_checkpoint_until", "checkpoint_every_epochs", "select_by", "channels_last", "deterministic", "split_seed", "test_subset", "corruption_seed", "select_reg", "select_layers", "select_every", "select_frequencies", "select_phases")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LABEL_CORRUPTION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SUBSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_PER_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    AMP_FIELD_NUMBER: _ClassVar[int]
    TF32_FIELD_NUMBER: _ClassVar[int]
    COMPILE_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_SHIFT_FIELD_NUMBER: _ClassVar[int]
    HFLIP_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    EARLY_CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    EARLY_CHECKPOINT_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SELECT_BY_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_LAST_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SEED_FIELD_NUMBER: _ClassVar[int]
    TEST_SUBSET_FIELD_NUMBER: _ClassVar[int]
    CORRUPTION_SEED_FIELD_NUMBER: _ClassVar[int]
    SELECT_REG_FIELD_NUMBER: _ClassVar[int]
    SELECT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    SELECT_EVERY_FIELD_NUMBER: _ClassVar[int]
    SELECT_FREQUENCIES_FIELD_NUMBER: _ClassVar[int]
    SELECT_PHASES_FIELD_NUMBER: _ClassVar[int]
    model: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    label_corruption: float
    train_subset: int
    data: _common_pb2.ArtifactRef
    epochs_per_segment: int
    val_size: int
    population: _containers.RepeatedCompositeFieldContainer[Variant]
    amp: str
    tf32: bool
    compile: str
    optimizer: str
    momentum: float
    weight_decay: float
    augment: bool
    max_shift: float
    hflip: bool
    fill: str
    early_checkpoint_every: float
    early_checkpoint_until: float
    checkpoint_every_epochs: int
    select_by: str
    channels_last: bool
    deterministic: bool
    split_seed: int
    test_subset: int
    corruption_seed: int
    select_reg: float
    select_layers: _containers.RepeatedScalarFieldContainer[str]
    select_every: int
    select_frequencies: int
    select_phases: int
    def __init__(self, model: _Optional[str] = ..., epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., lr: _Optional[float] = ..., seed: _Optional[int] = ..., label_corruption: _Optional[float] = ..., train_subset: _Optional[int] = ..., data: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., epochs_per_segment: _Optional[int] = ..., val_size: _Optional[int] = ..., population: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ..., amp: _Optional[str] = ..., tf32: _Optional[bool] = ..., compile: _Optional[str] = ..., optimizer: _Optional[str] = ..., momentum: _Optional[float] = ..., weight_decay: _Optional[float] = ..., augment: _Optional[bool] = ..., max_shift: _Optional[float] = ..., hflip: _Optional[bool] = ..., fill: _Optional[str] = ..., early_checkpoint_every: _Optional[float] = ..., early_checkpoint_until: _Optional[float] = ..., checkpoint_every_epochs: _Optional[int] = ..., select_by: _Optional[str] = ..., channels_last: _Optional[bool] = ..., deterministic: _Optional[bool] = ..., split_seed: _Optional[int] = ..., test_subset: _Optional[int] = ..., corruption_seed: _Optional[int] = ..., select_reg: _Optional[float] = ..., select_layers: _Optional[_Iterable[str]] = ..., select_every: _Optional[int] = ..., select_frequencies: _Optional[int] = ..., select_phases: _Optional[int] = ...) -> None: ...

class Variant(_message.Message):
    __slots__ = ("seed", "label_corruption", "select_reg")
    SEED_FIELD_NUMBER: _ClassVar[int]
    LABEL_CORRUPTION_FIELD_NUMBER: _ClassVar[int]
    SELECT_REG_FIELD_NUMBER: _ClassVar[int]
    seed: int
    label_corruption: float
    select_reg: float
    def __init__(self, seed: _Optional[int] = ..., label_corruption: _Optional[float] = ..., select_reg: _Optional[float] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("idempotency_key", "spec")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    spec: TrainSpec
    def __init__(self, idempotency_key: _Optional[str] = ..., spec: _Optional[_Union[TrainSpec, _Mapping]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("id", "after_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_seq: int
    def __init__(self, id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token", "parent_id")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.JobState
    page_size: int
    page_token: str
    parent_id: str
    def __init__(self, state: _Optional[_Union[_common_pb2.JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., parent_id: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_common_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
