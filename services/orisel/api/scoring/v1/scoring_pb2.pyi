from orisel.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreSpec(_message.Message):
    __slots__ = ("checkpoint", "stimuli", "layers", "reduction", "permutations", "threshold", "alpha", "seed", "test_subset", "model", "data", "n_orientations", "n_phases", "n_frequencies", "grating_centre", "tokens", "rectify", "class_map", "activations")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    STIMULI_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    REDUCTION_FIELD_NUMBER: _ClassVar[int]
    PERMUTATIONS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TEST_SUBSET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    N_ORIENTATIONS_FIELD_NUMBER: _ClassVar[int]
    N_PHASES_FIELD_NUMBER: _ClassVar[int]
    N_FREQUENCIES_FIELD_NUMBER: _ClassVar[int]
    GRATING_CENTRE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    RECTIFY_FIELD_NUMBER: _ClassVar[int]
    CLASS_MAP_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    checkpoint: _common_pb2.ArtifactRef
    stimuli: _containers.RepeatedScalarFieldContainer[str]
    layers: _containers.RepeatedScalarFieldContainer[str]
    reduction: str
    permutations: int
    threshold: float
    alpha: float
    seed: int
    test_subset: int
    model: _common_pb2.Model
    data: _common_pb2.ArtifactRef
    n_orientations: int
    n_phases: int
    n_frequencies: int
    grating_centre: str
    tokens: str
    rectify: bool
    class_map: _common_pb2.ArtifactRef
    activations: _common_pb2.ArtifactRef
    def __init__(self, checkpoint: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., stimuli: _Optional[_Iterable[str]] = ..., layers: _Optional[_Iterable[str]] = ..., reduction: _Optional[str] = ..., permutations: _Optional[int] = ..., threshold: _Optional[float] = ..., alpha: _Optional[float] = ..., seed: _Optional[int] = ..., test_subset: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.Model, _Mapping]] = ..., data: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., n_orientations: _Optional[int] = ..., n_phases: _Optional[int] = ..., n_frequencies: _Optional[int] = ..., grating_centre: _Optional[str] = ..., tokens: _Optional[str] = ..., rectify: _Optional[bool] = ..., class_map: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., activations: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("idempotency_key", "spec")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    spec: ScoreSpec
    def __init__(self, idempotency_key: _Optional[str] = ..., spec: _Optional[_Union[ScoreSpec, _Mapping]] = ...) -> None: ...

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
