#include "pipeline/formats/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace ppnet::pipeline {
namespace {

// Containers nest no deeper than this: a state dict needs a handful of levels, and hostile bytes
// could otherwise nest without end.
constexpr int kMaxDepth = 100;
// A state dict of a few thousand tensors makes tens of thousands of values; this many would take
// gigabytes, which hostile bytes should not get to ask for.
constexpr size_t kMaxValues = 4'000'000;

// The Python values a state-dict pickle can hold. The unpickler owns them all (an arena), and
// containers refer to their items by plain pointers: a hostile pickle can build cycles (a dict
// holding itself through the memo) or deep chains, and neither leaks nor recurses when freed.
struct PyValue;
using Py = PyValue*;
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kTensor };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;  // kString text, or kGlobal "module.name"
  std::vector<Py> items;
  std::vector<std::pair<Py, Py>> entries;
  torch::Tensor tensor;
  int depth = 1;  // 1 + the deepest child's depth, as far as the parser has seen
};

torch::Dtype storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::Dtype> kTypes = {
      {"torch.FloatStorage", torch::kFloat32},   {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},    {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},      {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},     {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},      {"torch.BoolStorage", torch::kBool}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) throw std::runtime_error("unsupported storage type " + global);
  return it->second;
}

class Unpickler {
 public:
  using PersistentLoad = std::function<torch::Tensor(const Py&)>;
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  Unpickler(const char* data, size_t size, PersistentLoad load)
      : data_(data), size_(size), persistent_load_(std::move(load)) {}

  Py load() {
    while (true) {
      const size_t at = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                        // PROTO
        case 0x95: take(8); break;                     // FRAME
        case '.': return pop();                        // STOP
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '}': push(make(PyValue::Kind::kDict)); break;
        case ']': push(make(PyValue::Kind::kList)); break;
        case ')': push(make(PyValue::Kind::kTuple)); break;
        case 't': case 'l': {                          // TUPLE, LIST
          auto v = make(op == 't' ? PyValue::Kind::kTuple : PyValue::Kind::kList);
          v->items = pop_mark();
          for (const auto& c : v->items) deepen(at, *v, c);
          push(v);
          break;
        }
        case 'd': {                                    // DICT
          auto v = make(PyValue::Kind::kDict);
          add_pairs(*v, pop_mark());
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {             // TUPLE1..3
          auto v = make(PyValue::Kind::kTuple);
          v->items.resize(op - 0x84);
          for (size_t k = v->items.size(); k-- > 0;) v->items[k] = pop();
          for (const auto& c : v->items) deepen(at, *v, c);
          push(v);
          break;
        }
        case 'J': { int32_t x; std::memcpy(&x, take(4), 4); push(make_int(x)); break; }
        case 'K': push(make_int(u8())); break;
        case 'M': { uint16_t x; std::memcpy(&x, take(2), 2); push(make_int(x)); break; }
        case 0x8a: push(make_int(long1())); break;     // LONG1
        case 'N': push(make(PyValue::Kind::kNone)); break;
        case 0x88: case 0x89: {                        // NEWTRUE, NEWFALSE
          auto v = make(PyValue::Kind::kBool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'G': {                                    // BINFLOAT, big-endian
          const char* p = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(p[k]);
          auto v = make(PyValue::Kind::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X': case 'T': case 'B': push(string(u32())); break;  // BINUNICODE, BINSTRING, BINBYTES
        case 0x8c: case 'U': case 'C': push(string(u8())); break;  // SHORT_ variants
        case 0x8d: case 0x8e: push(string(u64())); break;          // BINUNICODE8, BINBYTES8
        case 'q': memo_[u8()] = top(); break;          // BINPUT
        case 'r': memo_[u32()] = top(); break;         // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break; // MEMOIZE
        case 'h': push(memo(u8())); break;             // BINGET
        case 'j': push(memo(u32())); break;            // LONG_BINGET
        case 'c': {                                    // GLOBAL
          std::string module = line();
          push(make_string(PyValue::Kind::kGlobal, module + "." + line()));
          break;
        }
        case 0x93: {                                   // STACK_GLOBAL
          Py name = pop(), module = pop();
          if (name->kind != PyValue::Kind::kString || module->kind != PyValue::Kind::kString) fail(at, "STACK_GLOBAL needs two strings");
          push(make_string(PyValue::Kind::kGlobal, module->s + "." + name->s));
          break;
        }
        case 'R': case 0x81: {                         // REDUCE, NEWOBJ
          Py args = pop(), callable = pop();
          push(call(at, callable, args));
          break;
        }
        case 'b': pop(); top(); break;                 // BUILD: state (OrderedDict metadata) unused
        case 's': {                                    // SETITEM
          Py value = pop(), key = pop();
          add_pairs(dict_on_top(at), {key, value});
          break;
        }
        case 'u': {                                    // SETITEMS
          auto kv = pop_mark();
          add_pairs(dict_on_top(at), kv);
          break;
        }
        case 'a': {                                    // APPEND
          Py v = pop();
          PyValue& list = list_on_top(at);
          deepen(at, list, v);
          list.items.push_back(v);
          break;
        }
        case 'e': {                                    // APPENDS
          auto vs = pop_mark();
          auto& list = list_on_top(at);
          for (const auto& c : vs) deepen(at, list, c);
          list.items.insert(list.items.end(), vs.begin(), vs.end());
          break;
        }
        case 'Q': {                                    // BINPERSID
          auto v = make(PyValue::Kind::kTensor);
          v->tensor = persistent_load_(pop());
          push(v);
          break;
        }
        case '0': pop(); break;                        // POP
        case '1': pop_mark(); break;                   // POP_MARK
        case '2': push(top()); break;                  // DUP
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(at, std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

 private:
  Py make(PyValue::Kind kind) {
    if (values_.size() == kMaxValues) fail(pos_, "more than " + std::to_string(kMaxValues) + " values: not a state dict");
    values_.emplace_back();
    values_.back().kind = kind;
    return &values_.back();
  }
  Py make_int(int64_t i) {
    Py v = make(PyValue::Kind::kInt);
    v->i = i;
    return v;
  }
  Py make_string(PyValue::Kind kind, std::string s) {
    Py v = make(kind);
    v->s = std::move(s);
    return v;
  }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw std::runtime_error("data.pkl byte " + std::to_string(at) + ": " + what);
  }
  const char* take(uint64_t n) {
    if (n > size_ - pos_) fail(pos_, "pickle ends early");
    const char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t u8() { return static_cast<uint8_t>(*take(1)); }
  uint32_t u32() { uint32_t x; std::memcpy(&x, take(4), 4); return x; }
  uint64_t u64() { uint64_t x; std::memcpy(&x, take(8), 8); return x; }
  int64_t long1() {
    const uint8_t n = u8();
    if (n > 8) fail(pos_, "integer wider than 64 bits");
    const char* p = take(n);
    uint64_t x = 0;
    for (int k = n - 1; k >= 0; --k) x = (x << 8) | static_cast<uint8_t>(p[k]);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80)) x |= ~0ull << (8 * n);  // sign
    return static_cast<int64_t>(x);
  }
  Py string(uint64_t n) { return make_string(PyValue::Kind::kString, std::string(take(n), n)); }
  std::string line() {
    std::string s;
    for (char c = static_cast<char>(u8()); c != '\n'; c = static_cast<char>(u8())) s += c;
    return s;
  }
  void push(Py v) { stack_.push_back(std::move(v)); }
  Py& top() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) fail(pos_, "stack underflow");
    return stack_.back();
  }
  Py pop() {
    Py v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Py> pop_mark() {
    if (marks_.empty()) fail(pos_, "no MARK to pop to");
    std::vector<Py> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Py memo(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail(pos_, "reference to an unknown memo entry");
    return it->second;
  }
  PyValue& dict_on_top(size_t at) {
    if (top()->kind != PyValue::Kind::kDict) fail(at, "SETITEM on something that is not a dict");
    return *top();
  }
  PyValue& list_on_top(size_t at) {
    if (top()->kind != PyValue::Kind::kList) fail(at, "APPEND on something that is not a list");
    return *top();
  }
  void add_pairs(PyValue& dict, const std::vector<Py>& kv) {
    if (kv.size() % 2) fail(pos_, "odd number of items for a dict");
    for (const auto& c : kv) deepen(pos_, dict, c);
    for (size_t k = 0; k < kv.size(); k += 2) dict.entries.emplace_back(kv[k], kv[k + 1]);
  }
  // `parent` gets `child`: its depth grows to hold it, within kMaxDepth.
  void deepen(size_t at, PyValue& parent, const Py& child) {
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) fail(at, "containers nested deeper than " + std::to_string(kMaxDepth));
  }

  std::vector<int64_t> int_tuple(size_t at, const Py& v) {
    if (v->kind != PyValue::Kind::kTuple) fail(at, "expected a tuple of integers");
    std::vector<int64_t> out;
    for (const auto& x : v->items) {
      if (x->kind != PyValue::Kind::kInt || x->i < 0) fail(at, "expected a tuple of non-negative integers");
      out.push_back(x->i);
    }
    return out;
  }

  Py call(size_t at, const Py& callable, const Py& args) {
    if (callable->kind != PyValue::Kind::kGlobal || args->kind != PyValue::Kind::kTuple) {
      fail(at, "call of something that is not a known function");
    }
    const auto& a = args->items;
    const std::string& fn = callable->s;
    if (fn == "collections.OrderedDict") return make(PyValue::Kind::kDict);
    if (fn == "torch._utils._rebuild_parameter" ||
        fn == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != PyValue::Kind::kTensor) fail(at, fn + " without a tensor");
      return a[0];
    }
    if (fn == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != PyValue::Kind::kTensor || a[1]->kind != PyValue::Kind::kInt) {
        fail(at, "malformed _rebuild_tensor_v2 call");
      }
      const torch::Tensor& storage = a[0]->tensor;
      const auto size = int_tuple(at, a[2]);
      const auto stride = int_tuple(at, a[3]);
      if (size.size() != stride.size()) fail(at, "tensor size and stride differ in length");
      const int64_t offset = a[1]->i;
      int64_t extent = offset + 1;  // one past the last element read
      bool empty = false;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] == 0) empty = true;
        if (size[d] > 0 && __builtin_add_overflow(extent, (size[d] - 1) * stride[d], &extent)) {
          fail(at, "tensor extent overflows");
        }
      }
      if (offset < 0 || (!empty && extent > storage.numel())) {
        fail(at, "tensor reaches past the end of its storage");
      }
      auto v = make(PyValue::Kind::kTensor);
      v->tensor = empty ? torch::empty(size, storage.options())
                        : storage.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
      return v;
    }
    fail(at, "the file holds a Python object (" + fn +
                 ") ppnet cannot read; save a dict of tensors, e.g. model.state_dict()");
  }

  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  PersistentLoad persistent_load_;
  std::deque<PyValue> values_;  // every value made; addresses stay put as it grows
  std::vector<Py> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Py> memo_;
};

const PyValue* find_key(const PyValue& dict, const std::string& key) {
  for (const auto& [k, v] : dict.entries) {
    if (k->kind == PyValue::Kind::kString && k->s == key) return v;
  }
  return nullptr;
}

}  // namespace

bool is_legacy_torch_save(const std::string& first_bytes) {
  // Legacy files start with the pickled magic number 0x1950a86a20f9469cfc6c (PROTO 2, LONG1 10).
  return first_bytes.size() >= 4 && static_cast<uint8_t>(first_bytes[0]) == 0x80 &&
         static_cast<uint8_t>(first_bytes[1]) == 0x02 && static_cast<uint8_t>(first_bytes[2]) == 0x8a &&
         static_cast<uint8_t>(first_bytes[3]) == 0x0a;
}

std::string legacy_conversion_command(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string out = (p.parent_path() / (p.stem().string() + "-zip.pth")).string();
  return "python3 -c \"import torch; torch.save(dict(torch.load('" + path +
         "', map_location='cpu')), '" + out + "')\"";
}

model::TensorMap read_torch_save(const std::string& path) {
  try {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw std::runtime_error("cannot open file");
    std::string head(4, '\0');
    probe.read(head.data(), 4);
    head.resize(static_cast<size_t>(probe.gcount()));
    if (is_legacy_torch_save(head)) {
      throw std::runtime_error(
          "legacy (pre-1.6) torch.save format, which LibTorch cannot read. Convert it once with:\n  " +
          legacy_conversion_command(path));
    }
    if (head.rfind("PK", 0) != 0) throw std::runtime_error("not a zip-format torch.save file");

    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
    try {
      zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    } catch (const c10::Error& e) {
      throw std::runtime_error("damaged zip archive (" + std::string(e.what_without_backtrace()) + ")");
    }
    if (!zip->hasRecord("data.pkl")) throw std::runtime_error("zip archive has no data.pkl: not a torch.save file");
    auto [pickle, pickle_size] = zip->getRecord("data.pkl");

    std::map<std::string, torch::Tensor> storages;
    auto load_storage = [&](const Py& pid) -> torch::Tensor {
      const auto& a = pid->items;
      if (pid->kind != PyValue::Kind::kTuple || a.size() != 5 || a[0]->kind != PyValue::Kind::kString ||
          a[0]->s != "storage" || a[1]->kind != PyValue::Kind::kGlobal ||
          a[2]->kind != PyValue::Kind::kString || a[4]->kind != PyValue::Kind::kInt || a[4]->i < 0) {
        throw std::runtime_error("unexpected persistent id in data.pkl");
      }
      const std::string& key = a[2]->s;
      if (auto it = storages.find(key); it != storages.end()) return it->second;
      const torch::Dtype dtype = storage_dtype(a[1]->s);
      const std::string record = "data/" + key;
      if (!zip->hasRecord(record)) throw std::runtime_error("missing storage record " + record);
      auto [bytes, n] = zip->getRecord(record);
      const auto numel = static_cast<uint64_t>(a[4]->i);
      if (n / torch::elementSize(dtype) < numel) {
        throw std::runtime_error("storage record " + record + " is shorter than its " +
                                 std::to_string(numel) + " elements");
      }
      auto t = torch::empty({static_cast<int64_t>(numel)}, torch::TensorOptions().dtype(dtype));
      if (numel > 0) std::memcpy(t.data_ptr(), bytes.get(), numel * torch::elementSize(dtype));
      storages.emplace(key, t);
      return t;
    };
    Unpickler unpickler(static_cast<const char*>(pickle.get()), pickle_size, load_storage);
    const Py root = unpickler.load();

    if (root->kind != PyValue::Kind::kDict) {
      throw std::runtime_error("the saved object is not a dict of tensors");
    }
    const PyValue* dict = root;
    for (const char* wrapper : {"state_dict", "model"}) {
      const PyValue* inner = find_key(*root, wrapper);
      if (inner && inner->kind == PyValue::Kind::kDict) {
        dict = inner;
        break;
      }
    }
    model::TensorMap out;
    for (const auto& [k, v] : dict->entries) {
      if (k->kind == PyValue::Kind::kString && v->kind == PyValue::Kind::kTensor) out[k->s] = v->tensor;
    }
    if (out.empty()) throw std::runtime_error("the saved dict holds no tensors");
    return out;
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

}  // namespace ppnet::pipeline
