from orisel.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SweepSpec(_message.Message):
    __slots__ = ("checkpoint", "scores", "layers", "orders", "seeds", "fractions", "mode", "point", "test_subset", "model", "data", "block_images", "random_halves", "stimulus", "include_dead", "matched_controls", "class_map")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    FRACTIONS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    TEST_SUBSET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    BLOCK_IMAGES_FIELD_NUMBER: _ClassVar[int]
    RANDOM_HALVES_FIELD_NUMBER: _ClassVar[int]
    STIMULUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEAD_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CONTROLS_FIELD_NUMBER: _ClassVar[int]
    CLASS_MAP_FIELD_NUMBER: _ClassVar[int]
    checkpoint: _common_pb2.ArtifactRef
    scores: _common_pb2.ArtifactRef
    layers: _containers.RepeatedScalarFieldContainer[str]
    orders: _containers.RepeatedScalarFieldContainer[str]
    seeds: _containers.RepeatedScalarFieldContainer[int]
    fractions: _containers.RepeatedScalarFieldContainer[float]
    mode: str
    point: str
    test_subset: int
    model: _common_pb2.Model
    data: _common_pb2.ArtifactRef
    block_images: int
    random_halves: int
    stimulus: str
    include_dead: bool
    matched_controls: bool
    class_map: _common_pb2.ArtifactRef
    def __init__(self, checkpoint: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., scores: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., layers: _Optional[_Iterable[str]] = ..., orders: _Optional[_Iterable[str]] = ..., seeds: _Optional[_Iterable[int]] = ..., fractions: _Optional[_Iterable[float]] = ..., mode: _Optional[str] = ..., point: _Optional[str] = ..., test_subset: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.Model, _Mapping]] = ..., data: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., block_images: _Optional[int] = ..., random_halves: _Optional[int] = ..., stimulus: _Optional[str] = ..., include_dead: _Optional[bool] = ..., matched_controls: _Optional[bool] = ..., class_map: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class InvarianceSpec(_message.Message):
    __slots__ = ("checkpoint", "scores", "layers", "ablate_layers", "shift", "padding", "seeds", "test_subset", "model", "data", "mode", "point", "by", "stimulus", "include_dead", "damage_candidates", "damage_matched", "class_map")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ABLATE_LAYERS_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TEST_SUBSET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    STIMULUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEAD_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_MATCHED_FIELD_NUMBER: _ClassVar[int]
    CLASS_MAP_FIELD_NUMBER: _ClassVar[int]
    checkpoint: _common_pb2.ArtifactRef
    scores: _common_pb2.ArtifactRef
    layers: _containers.RepeatedScalarFieldContainer[str]
    ablate_layers: _containers.RepeatedScalarFieldContainer[str]
    shift: int
    padding: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    test_subset: int
    model: _common_pb2.Model
    data: _common_pb2.ArtifactRef
    mode: str
    point: str
    by: str
    stimulus: str
    include_dead: bool
    damage_candidates: int
    damage_matched: int
    class_map: _common_pb2.ArtifactRef
    def __init__(self, checkpoint: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., scores: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., layers: _Optional[_Iterable[str]] = ..., ablate_layers: _Optional[_Iterable[str]] = ..., shift: _Optional[int] = ..., padding: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., test_subset: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.Model, _Mapping]] = ..., data: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., mode: _Optional[str] = ..., point: _Optional[str] = ..., by: _Optional[str] = ..., stimulus: _Optional[str] = ..., include_dead: _Optional[bool] = ..., damage_candidates: _Optional[int] = ..., damage_matched: _Optional[int] = ..., class_map: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("idempotency_key", "sweep", "invariance")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    INVARIANCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    sweep: SweepSpec
    invariance: InvarianceSpec
    def __init__(self, idempotency_key: _Optional[str] = ..., sweep: _Optional[_Union[SweepSpec, _Mapping]] = ..., invariance: _Optional[_Union[InvarianceSpec, _Mapping]] = ...) -> None: ...

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
