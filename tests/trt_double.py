"""A test double of the `tensorrt` module of one version, built from that version's declared surface.

`make_tensorrt("10.16")` / `make_tensorrt("11.1")` returns a module whose classes, enums and
module attributes are exactly those tests/trt_surface.py lists for the version (taken from the
pybind11 binding sources; each entry cites its file and line):

- a name the version does not declare raises AttributeError — on the module, on an enum, on an
  instance, and when setting a property that is absent or read-only;
- a call whose arguments fit none of the declared overloads (keyword names, defaults) raises
  TypeError, as pybind11 does;
- a declared name the double does not emulate raises NotImplementedError (extend the double).

Behind the names sits just enough behaviour for the backend's build and run paths to execute
on the CPU: a JSON stand-in for the ONNX, a "serialized engine" that is JSON behind a magic, an
enqueue that copies the input's first bytes to the output address. Where the double copies a
behaviour of the real binding it cites where (the trampolines that swallow callback exceptions,
`set_shape`'s RuntimeError). It proves names, arities and call order — not what TensorRT does.
Each call of a declared method is appended to `module._events` as ("call", "Class.name", args,
kwargs); property reads and writes as ("get", "Class.name") and ("set", "Class.name", value).
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import json
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch

from trt_surface import SURFACES

MAGIC = b"TRT-DOUBLE-ENGINE\n"
_ITEMSIZE = {"FLOAT": 4, "HALF": 2, "BF16": 2, "INT8": 1, "INT32": 4, "INT64": 8, "BOOL": 1, "UINT8": 1}
DEFAULT_STREAM_WARNING = ("Using default stream in enqueueV3() may lead to performance issues due to additional "
                          "calls to cudaStreamSynchronize() by TensorRT to ensure correct synchronization.")


class _TrtEnum(enum.Enum):
    def __int__(self) -> int:  # pybind11 enums convert with int() (py::arithmetic)
        return self.value


def _signatures(overloads: list[list[str]]) -> list[inspect.Signature]:
    kind, sigs = inspect.Parameter.POSITIONAL_OR_KEYWORD, []
    for names in overloads:
        # pybind11 allows a default before a required argument (add_scale_nd); Python does not:
        # treat such a default as required
        last_required = max((i for i, a in enumerate(names) if not a.endswith("=")), default=-1)
        sigs.append(inspect.Signature([
            inspect.Parameter(a.rstrip("="), kind,
                              default=None if a.endswith("=") and i > last_required else inspect.Parameter.empty)
            for i, a in enumerate(names)]))
    return sigs


def make_tensorrt(version: str) -> types.ModuleType:
    surface = SURFACES[version]
    mod = types.ModuleType("tensorrt", f"test double of tensorrt {version} (tests/trt_double.py)")
    mod.__version__ = f"{version}.0"  # python/packaging/bindings_wheel/tensorrt/__init__.py:98
    mod._events = events = []  # private to the tests; not part of any TensorRT surface

    enums = {name: _TrtEnum(name, {k: v for k, (_line, v) in spec["members"].items()})
             for name, spec in surface["enums"].items()}
    for name, spec in surface["enums"].items():
        if spec["scope"] == "m":
            setattr(mod, name, enums[name])
    Severity = enums["Severity"]  # bound inside ILogger (pyCore.cpp: baseLoggerBinding, "Severity")
    for attr, (_src, cpp) in surface["module_attrs"].items():  # trt.float32 = DataType::kFLOAT, ...
        setattr(mod, attr, mod.DataType[cpp[1:]])

    def members_of(cls_name: str) -> dict:
        spec = surface["classes"][cls_name]
        table = {}
        for base in spec["bases"]:
            table.update(members_of(base))
        for m, (line, overloads) in spec["methods"].items():
            table[m] = ("method", _signatures(overloads), f"{spec['src'].split(':')[0]}:{line}")
        for p, (line, mode) in spec["properties"].items():
            table[p] = (mode, None, f"{spec['src'].split(':')[0]}:{line}")
        return table

    def checked(fn, sigs, qualname):
        def call(*args, **kwargs):
            for sig in sigs:
                try:
                    sig.bind(*args, **kwargs)
                    break
                except TypeError:
                    continue
            else:
                raise TypeError(f"{qualname}(): incompatible function arguments {args!r} {kwargs!r}; "
                                f"tensorrt {version} declares {[str(s) for s in sigs]}")
            events.append(("call", qualname, args, kwargs))
            return fn(*args, **kwargs)
        return call

    class Guarded:
        """Instances expose only the names their class declares in this version."""
        _trt_name = ""
        _members: dict = {}

        def __init_subclass__(cls, surface_name: str = "", **kw):
            super().__init_subclass__(**kw)
            cls._trt_name = surface_name
            cls._members = members_of(surface_name)
            user_init = cls.__init__
            if "__init__" not in cls._members:
                def no_init(self, *a, **k):
                    raise TypeError(f"tensorrt.{surface_name}: No constructor defined!")
                cls.__init__ = no_init
            else:
                _kind, sigs, _src = cls._members["__init__"]

                def init(self, *args, **kwargs):
                    checked(lambda *a, **k: user_init(self, *a, **k), sigs,
                            f"{surface_name}.__init__")(*args, **kwargs)
                cls.__init__ = init

        @classmethod
        def _make(cls, *args, **kwargs):
            """How the double hands out instances the bindings return (no Python constructor)."""
            self = bytearray.__new__(cls) if issubclass(cls, bytearray) else object.__new__(cls)
            cls._setup(self, *args, **kwargs)
            return self

        def _setup(self, *args, **kwargs):
            pass

        def __getattribute__(self, name):
            if name.startswith("_"):
                return object.__getattribute__(self, name)
            cls = type(self)
            member = cls._members.get(name)
            if member is None:
                raise AttributeError(f"tensorrt {version}: {cls._trt_name!r} object has no attribute {name!r}")
            try:
                value = object.__getattribute__(self, name)
            except AttributeError:
                raise NotImplementedError(f"the double does not emulate {cls._trt_name}.{name} ({member[2]})") from None
            if member[0] == "method":
                return checked(value, member[1], f"{cls._trt_name}.{name}")
            events.append(("get", f"{cls._trt_name}.{name}"))
            return value

        def __setattr__(self, name, value):
            if name.startswith("_"):
                return object.__setattr__(self, name, value)
            cls = type(self)
            member = cls._members.get(name)
            if member is None or member[0] != "rw":
                raise AttributeError(f"tensorrt {version}: cannot set {cls._trt_name}.{name} "
                                     f"({'not declared' if member is None else 'read-only'})")
            events.append(("set", f"{cls._trt_name}.{name}", value))
            hook = getattr(cls, f"_set_{name}", None)
            if hook is not None:
                hook(self, value)
            else:
                object.__setattr__(self, name, value)

    # --- interfaces the backend subclasses (not guarded: a subclass adds its own names) --------

    class ILogger:
        Severity = None  # replaced below

        def __init__(self, *args):
            if args:
                raise TypeError("ILogger.__init__() takes no arguments")
            self._trt_initialised = True

        def log(self, severity, msg):
            raise RuntimeError('Tried to call pure virtual function "ILogger::log"')

    def call_logger(logger, severity, msg):
        try:  # PyLogger::log catches and prints (pyCore.cpp:902-920 v11.1, 946-964 v10.16)
            logger.log(severity, msg)
        except Exception as exc:  # noqa: BLE001
            print(f"[ERROR] Exception caught in log(): {exc}", file=sys.stderr)

    class Logger(ILogger):  # prints to stdout, as DefaultLogger (pyCore.cpp:937-994 v11.1)
        def __init__(self, min_severity=None):
            super().__init__()

        def log(self, severity, msg):
            print(f"[TRT] {msg}")

    class IProgressMonitor:
        def __init__(self, *args):
            if args:
                raise TypeError("IProgressMonitor.__init__() takes no arguments")
            self._trt_initialised = True

    def call_monitor(monitor, method, *args, default=None):
        try:  # PyProgressMonitor catches, prints, and step_complete returns false (pyCore.cpp:1197-1250 v11.1)
            return getattr(monitor, method)(*args)
        except Exception as exc:  # noqa: BLE001
            print(f"[ERROR] Exception caught in {method}(): {exc}", file=sys.stderr)
            return default

    def need_initialised(obj, base, what):
        if not isinstance(obj, base):
            raise TypeError(f"{what}: incompatible function arguments ({type(obj).__name__} is not {base.__name__})")
        if not getattr(obj, "_trt_initialised", False):
            raise TypeError(f"{type(obj).__name__}.__init__() must be called when overriding __init__")

    for attr, value in Severity.__members__.items():  # .export_values() puts them on ILogger too
        setattr(ILogger, attr, value)
    ILogger.Severity = Severity
    Logger.Severity = Severity  # python/packaging/bindings_wheel/tensorrt/__init__.py (Logger.Severity = ...)

    # --- value types ----------------------------------------------------------------------

    class Dims(Guarded, surface_name="Dims"):
        def __init__(self, shape=()):
            self._d = tuple(int(x) for x in shape)

        def _setup(self, shape):
            self._d = tuple(int(x) for x in shape)

        def __len__(self):
            return len(self._d)

        def __getitem__(self, i):
            return self._d[i]  # IndexError past the end: what lets tuple(dims) stop

        def __eq__(self, other):
            return tuple(self) == tuple(other)

        def __repr__(self):
            return f"({', '.join(map(str, self._d))})"

    def as_shape(value, what):
        if isinstance(value, Dims) or (isinstance(value, (tuple, list)) and all(isinstance(x, int) for x in value)):
            return tuple(value)  # py::implicitly_convertible<std::vector<int64_t>, Dims> (pyFoundationalTypes.cpp:255)
        raise TypeError(f"{what}: incompatible function arguments (shape {value!r})")

    def need_enum(value, enum_cls, what):
        if not isinstance(value, enum_cls):
            raise TypeError(f"{what}: incompatible function arguments ({value!r} is not {enum_cls.__name__})")

    class IHostMemory(bytearray, Guarded, surface_name="IHostMemory"):
        @property
        def nbytes(self):
            return len(self)

        @property
        def dtype(self):
            return mod.DataType.UINT8

    class ITensor(Guarded, surface_name="ITensor"):
        def _setup(self, name, shape, dtype):
            object.__setattr__(self, "name", name)
            object.__setattr__(self, "shape", Dims._make(shape))
            object.__setattr__(self, "dtype", dtype)

    class ILayer(Guarded, surface_name="ILayer"):
        def _setup(self, layer_type, outputs):
            object.__setattr__(self, "type", layer_type)
            self._outputs = outputs

        @property
        def num_outputs(self):
            return len(self._outputs)

        def get_output(self, index):
            return self._outputs[index]

    class INetworkDefinition(Guarded, surface_name="INetworkDefinition"):
        def _setup(self, flags):
            self._flags, self._inputs, self._outputs, self._layers = flags, [], [], []

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))
        num_layers = property(lambda self: len(self._layers))

        def get_input(self, index):
            return self._inputs[index]

        def get_output(self, index):
            return self._outputs[index]

        def get_layer(self, index):
            return self._layers[index]

        def __len__(self):
            return len(self._layers)

        def __getitem__(self, i):
            return self._layers[i]

    class ParserError(Guarded, surface_name="ParserError"):
        def _setup(self, text):
            self._text = text

        def desc(self):
            return self._text

        def __str__(self):
            return self._text

    class OnnxParser(Guarded, surface_name="OnnxParser"):
        def __init__(self, network, logger):
            need_initialised(logger, ILogger, "OnnxParser.__init__")
            if not isinstance(network, INetworkDefinition):
                raise TypeError("OnnxParser.__init__: incompatible function arguments")
            self._network, self._errors = network, []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index):
            return self._errors[index]

        def parse_from_file(self, model):
            if not isinstance(model, str):
                raise TypeError("OnnxParser.parse_from_file: incompatible function arguments (model is a str path)")
            try:
                spec = json.loads(Path(model).read_text())
            except (OSError, ValueError) as exc:
                self._errors.append(ParserError._make(f"ModelImporter: failed to parse {model}: {exc}"))
                return False
            dt = mod.DataType
            net = self._network
            net._inputs = [ITensor._make(t["name"], t["shape"], dt[t["dtype"]]) for t in spec["inputs"]]
            net._outputs = [ITensor._make(t["name"], t["shape"], dt[t["dtype"]]) for t in spec["outputs"]]
            net._layers = [ILayer._make(mod.LayerType[layer["type"]],
                                        [ITensor._make(f"l{i}o{j}", (), dt[o]) for j, o in enumerate(layer["outputs"])])
                           for i, layer in enumerate(spec.get("layers", []))]
            return True

    class IOptimizationProfile(Guarded, surface_name="IOptimizationProfile"):
        def _setup(self):
            self._shapes = {}

        def set_shape(self, input, min, opt, max):  # noqa: A002 - the binding's keyword names
            lo, mid, hi = (as_shape(s, "IOptimizationProfile.set_shape") for s in (min, opt, max))
            if not (len(lo) == len(mid) == len(hi) and all(a <= b <= c for a, b, c in zip(lo, mid, hi))):
                # PY_ASSERT_RUNTIME_ERROR in opt_profile_set_shape (pyCore.cpp:36-44, v10.16 and v11.1)
                raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
            self._shapes[input] = (lo, mid, hi)

        def __bool__(self):
            return bool(self._shapes)

    class IBuilderConfig(Guarded, surface_name="IBuilderConfig"):
        def _setup(self):
            self._flags = {mod.BuilderFlag.TF32}  # TF32 is on by default (include/NvInfer.h:9973-9976 v11.1)
            self._pools, self._profiles, self._monitor = {}, [], None
            object.__setattr__(self, "builder_optimization_level", 3)

        def set_memory_pool_limit(self, pool, pool_size):
            need_enum(pool, mod.MemoryPoolType, "IBuilderConfig.set_memory_pool_limit")
            self._pools[pool] = int(pool_size)

        def set_flag(self, flag):
            need_enum(flag, mod.BuilderFlag, "IBuilderConfig.set_flag")
            self._flags.add(flag)

        def clear_flag(self, flag):
            need_enum(flag, mod.BuilderFlag, "IBuilderConfig.clear_flag")
            self._flags.discard(flag)

        def get_flag(self, flag):
            need_enum(flag, mod.BuilderFlag, "IBuilderConfig.get_flag")
            return flag in self._flags

        def add_optimization_profile(self, profile):
            if not isinstance(profile, IOptimizationProfile):
                raise TypeError("IBuilderConfig.add_optimization_profile: incompatible function arguments")
            if not profile:
                return -1  # "-1 if the input is not valid" (include/NvInfer.h:10838 v11.1)
            self._profiles.append(profile)
            return len(self._profiles) - 1

        num_optimization_profiles = property(lambda self: len(self._profiles))

        def _set_builder_optimization_level(self, value):
            if not isinstance(value, int):
                raise TypeError("builder_optimization_level: incompatible value")
            object.__setattr__(self, "builder_optimization_level", value)

        def _set_progress_monitor(self, monitor):
            need_initialised(monitor, IProgressMonitor, "IBuilderConfig.progress_monitor")
            self._monitor = monitor

        progress_monitor = property(lambda self: self._monitor)

    class Builder(Guarded, surface_name="Builder"):
        _fail_with: str | None = None  # set by a test: the build logs this ERROR and returns None

        def __init__(self, logger):
            need_initialised(logger, ILogger, "Builder.__init__")
            self._logger = logger

        def create_network(self, flags=0):
            if not isinstance(flags, int):
                raise TypeError("Builder.create_network: incompatible function arguments (flags is an int)")
            return INetworkDefinition._make(flags)

        def create_builder_config(self):
            return IBuilderConfig._make()

        def create_optimization_profile(self):
            return IOptimizationProfile._make()

        def build_serialized_network(self, network, config, kernel_text=None):
            log = lambda text: call_logger(self._logger, Severity.ERROR, text)  # noqa: E731
            for tensor in network._inputs:
                if any(d < 0 for d in tensor.shape) and not any(tensor.name in p._shapes for p in config._profiles):
                    log("Network has dynamic or shape inputs, but no optimization profile has been defined.")
                    return None
            monitor = config._monitor
            if monitor is not None:
                call_monitor(monitor, "phase_start", "Building engine", None, 4)
                for step in range(4):
                    if not call_monitor(monitor, "step_complete", "Building engine", step, default=False):
                        return None  # the monitor said stop (or raised): the build is cancelled
                call_monitor(monitor, "phase_finish", "Building engine")
            if Builder._fail_with:
                log(Builder._fail_with)
                return None
            profile = config._profiles[0]._shapes if config._profiles else {}
            desc = {"version": version, "profile": {k: [list(s) for s in v] for k, v in profile.items()},
                    "inputs": [[t.name, list(t.shape), t.dtype.name] for t in network._inputs],
                    "outputs": [[t.name, list(t.shape), t.dtype.name] for t in network._outputs]}
            return IHostMemory._make(MAGIC + json.dumps(desc).encode())

    IHostMemory._setup = lambda self, data: bytearray.__init__(self, data)

    class IExecutionContext(Guarded, surface_name="IExecutionContext"):
        def _setup(self, engine):
            self._engine, self._shapes, self._addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            shape = as_shape(shape, "IExecutionContext.set_input_shape")
            lo, _opt, hi = self._engine._profile.get(name, (shape, shape, shape))
            if name not in self._engine._io or len(shape) != len(lo) or \
                    not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self._shapes[name] = shape
            return True

        def get_tensor_shape(self, name):
            return Dims._make(self._shape(name))

        def _shape(self, name):
            mode, shape, _dtype = self._engine._io[name]
            if mode == mod.TensorIOMode.INPUT:
                return self._shapes.get(name, shape)
            if shape and shape[0] < 0:  # the output's batch follows the input's
                shape = (next(iter(self._shapes.values()), (-1,))[0],) + tuple(shape[1:])
            return tuple(shape)

        def set_tensor_address(self, name, memory):
            if not isinstance(memory, int):
                raise TypeError("IExecutionContext.set_tensor_address: incompatible function arguments")
            if name not in self._engine._io:
                return False
            self._addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle):
            if not isinstance(stream_handle, int):
                raise TypeError("IExecutionContext.execute_async_v3: incompatible function arguments")
            if stream_handle == 0:
                call_logger(self._engine._logger, Severity.WARNING, DEFAULT_STREAM_WARNING)
            shapes = {n: self._shape(n) for n in self._engine._io}
            if set(self._addresses) != set(self._engine._io) or any(d < 0 for s in shapes.values() for d in s):
                call_logger(self._engine._logger, Severity.ERROR, "IExecutionContext::enqueueV3: Error Code 3: "
                            "API Usage Error (not all input shapes or tensor addresses are set)")
                return False
            (inp,) = [n for n, (m, _s, _d) in self._engine._io.items() if m == mod.TensorIOMode.INPUT]
            (out,) = [n for n, (m, _s, _d) in self._engine._io.items() if m == mod.TensorIOMode.OUTPUT]
            size = min(_nbytes(shapes[inp], self._engine._io[inp][2]), _nbytes(shapes[out], self._engine._io[out][2]))
            ctypes.memmove(self._addresses[out], self._addresses[inp], size)
            return True

    def _nbytes(shape, dtype):
        n = _ITEMSIZE[dtype.name]
        for d in shape:
            n *= d
        return n

    class ICudaEngine(Guarded, surface_name="ICudaEngine"):
        def _setup(self, desc, logger):
            dt = mod.DataType
            self._logger = logger
            self._io = {name: (mod.TensorIOMode.INPUT, tuple(shape), dt[d]) for name, shape, d in desc["inputs"]}
            self._io.update({name: (mod.TensorIOMode.OUTPUT, tuple(shape), dt[d])
                             for name, shape, d in desc["outputs"]})
            self._profile = {k: tuple(tuple(s) for s in v) for k, v in desc["profile"].items()}

        num_io_tensors = property(lambda self: len(self._io))

        def get_tensor_name(self, index):
            return list(self._io)[index]

        def get_tensor_mode(self, name):
            return self._io[name][0] if name in self._io else mod.TensorIOMode.NONE

        def get_tensor_shape(self, name):
            return Dims._make(self._io[name][1])

        def get_tensor_dtype(self, name):
            return self._io[name][2]

        def get_tensor_profile_shape(self, name, profile_index):
            return [Dims._make(s) for s in self._profile[name]]

        def create_execution_context(self, strategy=None):
            return IExecutionContext._make(self)

    class Runtime(Guarded, surface_name="Runtime"):
        def __init__(self, logger):
            need_initialised(logger, ILogger, "Runtime.__init__")
            self._logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            try:
                blob = memoryview(serialized_engine).tobytes()  # py::buffer: anything with the buffer protocol
            except TypeError:
                raise TypeError("Runtime.deserialize_cuda_engine: incompatible function arguments") from None
            if not blob.startswith(MAGIC):
                call_logger(self._logger, Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: "
                            "Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.)")
                return None
            desc = json.loads(blob[len(MAGIC):])
            if desc["version"] != version:
                call_logger(self._logger, Severity.ERROR, "Serialization assertion: version tag does not match")
                return None
            return ICudaEngine._make(desc, self._logger)

    for cls in (ILogger, Logger, IProgressMonitor, Dims, IHostMemory, ITensor, ILayer, INetworkDefinition,
                ParserError, OnnxParser, IOptimizationProfile, IBuilderConfig, Builder, IExecutionContext,
                ICudaEngine, Runtime):
        name = getattr(cls, "_trt_name", "") or cls.__name__
        assert name in surface["classes"], name
        setattr(mod, name, cls)
    return mod


def fake_onnx(path: Path, input_shape=(1, 3, 64, 64), output_shape=(1, 8, 4, 4), dtype="FLOAT",
              layers=(("QUANTIZE", ["INT8"]), ("DEQUANTIZE", ["FLOAT"]), ("CONVOLUTION", ["FLOAT"]))) -> Path:
    """The double's stand-in for a backbone ONNX (a JSON description the double's parser reads)."""
    path.write_text(json.dumps({
        "inputs": [{"name": "image", "shape": list(input_shape), "dtype": dtype}],
        "outputs": [{"name": "features", "shape": list(output_shape), "dtype": dtype}],
        "layers": [{"type": t, "outputs": list(o)} for t, o in layers]}))
    return path


# --- the CUDA side, for the CPU ---------------------------------------------------------------

TRT_STREAM, CALLER_STREAM = 7, 0  # 0: the legacy default stream torch's current stream usually is


class FakeStream:
    def __init__(self, handle: int, events: list) -> None:
        self.cuda_stream, self.events = handle, events

    def wait_stream(self, other: "FakeStream") -> None:
        self.events.append(("wait", self.cuda_stream, other.cuda_stream))


class FakePlacement:
    """The backend's CudaPlacement on the CPU: records device activation and stream use in the
    double's event list, so a test sees which TensorRT calls ran inside the device context."""

    def __init__(self, events: list, label: str = "cuda:1") -> None:
        self.device, self.events, self.label = torch.device("cpu"), events, label

    @contextmanager
    def activate(self):
        self.events.append(("enter", self.label))
        try:
            yield
        finally:
            self.events.append(("exit", self.label))

    def gpu(self):
        return "Fake GPU", (9, 0)

    def new_stream(self):
        return FakeStream(TRT_STREAM, self.events)

    def current_stream(self):
        return FakeStream(CALLER_STREAM, self.events)

    def keep_until_done(self, tensor, stream) -> None:
        self.events.append(("keep", stream.cuda_stream))

    def describe(self) -> str:
        return f"{self.label} (Fake GPU)"
