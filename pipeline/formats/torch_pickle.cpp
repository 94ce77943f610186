#include "pipeline/formats/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <algorithm>
#include <climits>
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

using Py = PyValue*;
using Arena = std::deque<PyValue>;

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

// One pickle of `data`, from byte `start`; its values go into `arena`. `persistent_load` turns
// a persistent id (BINPERSID) into its value: a storage, or (legacy files) a module class.
class Unpickler {
 public:
  using PersistentLoad = std::function<Py(Arena&, const PyValue&)>;
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  Unpickler(Arena& arena, const char* data, size_t size, size_t start, std::string name, PersistentLoad load)
      : values_(arena), data_(data), size_(size), pos_(start), name_(std::move(name)), persistent_load_(std::move(load)) {}

  /// Where the pickle ended (after its STOP).
  size_t position() const { return pos_; }

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
          const auto items = pop_mark();
          v->items.assign(items.begin(), items.end());
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
        case 'R': {                                    // REDUCE
          Py args = pop(), callable = pop();
          push(call(at, callable, args));
          break;
        }
        case 0x81: {                                   // NEWOBJ: cls.__new__(cls, *args)
          Py args = pop(), cls = pop();
          push(new_object(at, cls, args));
          break;
        }
        case 0x92: {                                   // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
          pop();
          Py args = pop(), cls = pop();
          push(new_object(at, cls, args));
          break;
        }
        case 'b': {                                    // BUILD: an object's state (its __dict__)
          Py state = pop();
          Py target = top();
          if (target->kind == PyValue::Kind::kObject) {
            deepen(at, *target, state);
            target->state = state;
          }  // an OrderedDict's or a tensor's state (metadata) is not used
          break;
        }
        case 0x8f: push(make(PyValue::Kind::kSet)); break;  // EMPTY_SET
        case 0x90: {                                   // ADDITEMS
          auto vs = pop_mark();
          if (top()->kind != PyValue::Kind::kSet) fail(at, "ADDITEMS on something that is not a set");
          for (const auto& c : vs) deepen(at, *top(), c);
          top()->items.insert(top()->items.end(), vs.begin(), vs.end());
          break;
        }
        case 0x91: {                                   // FROZENSET
          auto v = make(PyValue::Kind::kSet);
          v->items.assign(stack_.begin() + static_cast<std::ptrdiff_t>(mark()), stack_.end());
          pop_mark();
          for (const auto& c : v->items) deepen(at, *v, c);
          push(v);
          break;
        }
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
        case 'Q': push(persistent_load_(values_, *pop())); break;  // BINPERSID
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
    if (values_.size() >= kMaxValues) fail(pos_, "more than " + std::to_string(kMaxValues) + " values: not a saved model");
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
    throw std::runtime_error(name_ + " byte " + std::to_string(at) + ": " + what);
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
  size_t mark() {
    if (marks_.empty()) fail(pos_, "no MARK to pop to");
    return marks_.back();
  }
  std::vector<Py> pop_mark() {
    mark();
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
  void deepen(size_t at, PyValue& parent, const PyValue* child) {
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) fail(at, "containers nested deeper than " + std::to_string(kMaxDepth));
  }

  std::vector<int64_t> int_tuple(size_t at, const PyValue* v) {
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
    if ((fn == "builtins.getattr" || fn == "__builtin__.getattr") && a.size() == 2 && a[0]->kind == PyValue::Kind::kGlobal &&
        a[1]->kind == PyValue::Kind::kString) {  // how a builtin function is named (torch.sigmoid): a name, not a call
      return make_string(PyValue::Kind::kGlobal, a[0]->s + "." + a[1]->s);
    }
    if (fn == "copyreg._reconstructor" || fn == "copy_reg._reconstructor") {  // (cls, base, state)
      if (a.empty()) fail(at, fn + " without a class");
      return new_object(at, a[0], make(PyValue::Kind::kTuple));
    }
    if (fn == "builtins.set" || fn == "__builtin__.set" || fn == "builtins.frozenset" || fn == "__builtin__.frozenset") {
      auto v = make(PyValue::Kind::kSet);
      if (!a.empty()) {
        if (a[0]->kind != PyValue::Kind::kList && a[0]->kind != PyValue::Kind::kTuple) fail(at, fn + " of something that is not a list");
        v->items = a[0]->items;
        deepen(at, *v, a[0]);
      }
      return v;
    }
    if (fn == "torch._utils._rebuild_parameter" ||
        fn == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != PyValue::Kind::kTensor) fail(at, fn + " without a tensor");
      return const_cast<Py>(a[0]);  // the arena's own value
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
      // A view for now: a legacy file's storages are filled after its pickle (materialise()).
      v->tensor = empty ? torch::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
      return v;
    }
    fail(at, "the file calls " + fn + ", which ppnet does not run (it reads tensors, containers and objects "
             "of named classes, never code); save a dict of tensors, e.g. model.state_dict()");
  }

  // An object of class `cls`, its state set by a later BUILD. Nothing of the class is run.
  Py new_object(size_t at, const PyValue* cls, const PyValue* args) {
    if (cls->kind != PyValue::Kind::kGlobal || args->kind != PyValue::Kind::kTuple) fail(at, "NEWOBJ of something that is not a class");
    if (cls->s == "collections.OrderedDict") return make(PyValue::Kind::kDict);
    if (cls->s == "builtins.set" || cls->s == "builtins.frozenset") return make(PyValue::Kind::kSet);
    return make_string(PyValue::Kind::kObject, cls->s);
  }

  Arena& values_;  // every value made; addresses stay put as it grows
  const char* data_;
  size_t size_;
  size_t pos_;
  std::string name_;  // for messages: "data.pkl", "object pickle"
  PersistentLoad persistent_load_;
  std::vector<Py> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Py> memo_;
};

// The tensors of `arena` as values of their own: contiguous, and copies where they were views
// of part of a storage. `storage_bytes`: what the file's storages hold; the copies may add up to
// a few times that, not to what hostile bytes ask for by viewing one storage many times.
void materialise(Arena& arena, uint64_t storage_bytes) {
  auto whole_storage = [](const torch::Tensor& t) {
    return t.is_contiguous() && t.storage_offset() == 0 &&
           t.numel() * static_cast<int64_t>(t.element_size()) == static_cast<int64_t>(t.storage().nbytes());
  };
  const uint64_t limit = 4 * storage_bytes + (uint64_t{64} << 20);
  uint64_t copies = 0;
  for (const auto& v : arena) {
    if (v.kind != PyValue::Kind::kTensor || whole_storage(v.tensor)) continue;
    copies += static_cast<uint64_t>(v.tensor.numel()) * v.tensor.element_size();
    if (copies > limit) {
      throw std::runtime_error("its tensors view the same storages over and over (more than " + std::to_string(limit) +
                               " bytes of copies): not a saved model");
    }
  }
  for (auto& v : arena) {
    if (v.kind == PyValue::Kind::kTensor && !whole_storage(v.tensor)) v.tensor = v.tensor.clone(at::MemoryFormat::Contiguous);
  }
}

// A storage's persistent id: ('storage', storage type, key, location, numel[, view metadata]).
struct StorageId {
  torch::Dtype dtype;
  std::string key;
  uint64_t numel;
  const PyValue* view = nullptr;  // legacy: (root key, offset, size) of a view, or None
};

StorageId storage_id(const PyValue& pid, size_t items) {
  const auto& a = pid.items;
  if (pid.kind != PyValue::Kind::kTuple || a.size() != items || a[0]->kind != PyValue::Kind::kString ||
      a[0]->s != "storage" || a[1]->kind != PyValue::Kind::kGlobal || a[2]->kind != PyValue::Kind::kString ||
      a[4]->kind != PyValue::Kind::kInt || a[4]->i < 0) {
    throw std::runtime_error("unexpected persistent id in the pickle");
  }
  StorageId id{storage_dtype(a[1]->s), a[2]->s, static_cast<uint64_t>(a[4]->i)};
  if (items == 6 && a[5]->kind != PyValue::Kind::kNone) id.view = a[5];
  return id;
}

Py tensor_value(Arena& arena, torch::Tensor t) {
  arena.emplace_back();
  arena.back().kind = PyValue::Kind::kTensor;
  arena.back().tensor = std::move(t);
  return &arena.back();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open file");
  const std::streamoff size = in.tellg();
  if (size < 0) throw std::runtime_error("cannot read file");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) throw std::runtime_error("cannot read file");
  return bytes;
}

// Zip format: archive/data.pkl, each storage a record data/<key>.
TorchSaveFile read_zip(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("damaged zip archive (" + std::string(e.what_without_backtrace()) + ")");
  }
  if (!zip->hasRecord("data.pkl")) throw std::runtime_error("zip archive has no data.pkl: not a torch.save file");
  auto [pickle, pickle_size] = zip->getRecord("data.pkl");
  std::map<std::string, torch::Tensor> storages;
  uint64_t storage_bytes = 0;
  auto load = [&](Arena& arena, const PyValue& pid) -> Py {
    const StorageId id = storage_id(pid, 5);
    if (auto it = storages.find(id.key); it != storages.end()) return tensor_value(arena, it->second);
    const std::string record = "data/" + id.key;
    if (!zip->hasRecord(record)) throw std::runtime_error("missing storage record " + record);
    auto [bytes, n] = zip->getRecord(record);
    if (n / torch::elementSize(id.dtype) < id.numel) {
      throw std::runtime_error("storage record " + record + " is shorter than its " + std::to_string(id.numel) + " elements");
    }
    auto t = torch::empty({static_cast<int64_t>(id.numel)}, torch::TensorOptions().dtype(id.dtype));
    if (id.numel > 0) std::memcpy(t.data_ptr(), bytes.get(), id.numel * torch::elementSize(id.dtype));
    storage_bytes += id.numel * torch::elementSize(id.dtype);
    storages.emplace(id.key, t);
    return tensor_value(arena, t);
  };
  auto arena = std::make_shared<Arena>();
  Unpickler unpickler(*arena, static_cast<const char*>(pickle.get()), pickle_size, 0, "data.pkl", load);
  const Py root = unpickler.load();
  materialise(*arena, storage_bytes);
  return TorchSaveFile(arena, root, false);
}

// Legacy format: pickles of the magic number, the protocol version and the system's sizes, then
// the object (storages as persistent ids; each nn.Module class as ('module', class, file,
// source)), then the list of storage keys, then per key its element count (int64, little
// endian) and bytes. A storage's bytes come after the object, so the object's tensors are views
// filled in afterwards.
TorchSaveFile read_legacy(const std::string& path) {
  const std::string bytes = read_all(path);
  const char* data = bytes.data();
  constexpr size_t kMagicPickle = 2 + 2 + 10 + 1;  // PROTO 2, LONG1 10 bytes, STOP
  if (bytes.size() < kMagicPickle || bytes.compare(2, 2, "\x8a\x0a") != 0 ||
      bytes.compare(4, 11, std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 11)) != 0) {
    throw std::runtime_error("not a torch.save file (its magic number is wrong)");
  }
  auto arena = std::make_shared<Arena>();
  auto no_ids = [](Arena&, const PyValue&) -> Py { throw std::runtime_error("persistent id in a header pickle"); };
  size_t pos = kMagicPickle;
  const Py version = [&] {
    Unpickler u(*arena, data, bytes.size(), pos, "protocol version pickle", no_ids);
    Py v = u.load();
    pos = u.position();
    return v;
  }();
  if (version->kind != PyValue::Kind::kInt || version->i != 1001) {
    throw std::runtime_error("legacy torch.save protocol " + (version->kind == PyValue::Kind::kInt ? std::to_string(version->i) : "?") +
                             " is not the one ppnet reads (1001)");
  }
  {
    Unpickler u(*arena, data, bytes.size(), pos, "system information pickle", no_ids);
    const Py info = u.load();
    pos = u.position();
    const PyValue* little = info->get("little_endian");
    if (little && little->kind == PyValue::Kind::kBool && little->i == 0) {
      throw std::runtime_error("written on a big-endian machine, which ppnet does not read");
    }
  }
  struct Storage {
    torch::Tensor tensor;
    uint64_t numel;
  };
  std::map<std::string, Storage> storages;
  uint64_t storage_bytes = 0;
  auto storage = [&](const StorageId& id) -> torch::Tensor& {
    auto it = storages.find(id.key);
    if (it == storages.end()) {
      // Their bytes must be in the file: all storages together no larger than the file itself.
      if (id.numel > (bytes.size() - storage_bytes) / torch::elementSize(id.dtype)) {
        throw std::runtime_error("storage " + id.key + " claims " + std::to_string(id.numel) + " elements, more than the file holds");
      }
      storage_bytes += id.numel * torch::elementSize(id.dtype);
      it = storages.emplace(id.key, Storage{torch::zeros({static_cast<int64_t>(id.numel)}, torch::TensorOptions().dtype(id.dtype)), id.numel}).first;
    }
    if (it->second.tensor.scalar_type() != id.dtype || it->second.numel != id.numel) {
      throw std::runtime_error("storage " + id.key + " is named with two types or sizes");
    }
    return it->second.tensor;
  };
  auto load = [&](Arena& values, const PyValue& pid) -> Py {
    if (pid.kind == PyValue::Kind::kTuple && pid.items.size() == 4 && pid.items[0]->kind == PyValue::Kind::kString &&
        pid.items[0]->s == "module") {
      return const_cast<Py>(pid.items[1]);  // the class (its recorded source is not needed)
    }
    const StorageId id = storage_id(pid, 6);
    torch::Tensor t = storage(id);
    if (id.view) {  // (root key, offset, size): a view of the storage `key`
      const auto& v = id.view->items;
      if (id.view->kind != PyValue::Kind::kTuple || v.size() != 3 || v[1]->kind != PyValue::Kind::kInt ||
          v[2]->kind != PyValue::Kind::kInt || v[1]->i < 0 || v[2]->i < 0 || v[1]->i + v[2]->i > t.numel()) {
        throw std::runtime_error("malformed storage view of " + id.key);
      }
      t = t.narrow(0, v[1]->i, v[2]->i);
    }
    return tensor_value(values, t);
  };
  Unpickler object(*arena, data, bytes.size(), pos, "object pickle", load);
  const Py root = object.load();
  pos = object.position();
  Unpickler key_list(*arena, data, bytes.size(), pos, "storage key pickle", no_ids);
  const Py keys = key_list.load();
  pos = key_list.position();
  if (keys->kind != PyValue::Kind::kList) throw std::runtime_error("the storage keys are not a list");
  for (const PyValue* key : keys->items) {
    if (key->kind != PyValue::Kind::kString) throw std::runtime_error("a storage key is not a string");
    auto it = storages.find(key->s);
    if (it == storages.end()) throw std::runtime_error("storage " + key->s + " is listed but no tensor uses it");
    const size_t element = torch::elementSize(it->second.tensor.scalar_type());
    uint64_t numel = 0;
    if (bytes.size() - pos < 8) throw std::runtime_error("the file ends before storage " + key->s);
    std::memcpy(&numel, data + pos, 8);
    pos += 8;
    if (numel != it->second.numel) {
      throw std::runtime_error("storage " + key->s + " holds " + std::to_string(numel) + " elements, not the " +
                               std::to_string(it->second.numel) + " its tensors were saved with");
    }
    if ((bytes.size() - pos) / element < numel) throw std::runtime_error("the file ends inside storage " + key->s);
    if (numel > 0) std::memcpy(it->second.tensor.data_ptr(), data + pos, numel * element);
    pos += numel * element;
  }
  if (keys->items.size() != storages.size()) throw std::runtime_error("a storage a tensor uses is not in the file");
  materialise(*arena, storage_bytes);
  return TorchSaveFile(arena, root, true);
}

}  // namespace

const PyValue* PyValue::get(const std::string& key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k->kind == Kind::kString && k->s == key) return v;
  }
  return nullptr;
}

std::string PyValue::class_name() const {
  const size_t dot = s.rfind('.');
  return dot == std::string::npos ? s : s.substr(dot + 1);
}

namespace {

// Protocol 2 pickle opcodes, as torch.save writes a state dict.
class PickleWriter {
 public:
  std::string bytes = std::string("\x80\x02", 2);  // PROTO 2
  void global(const std::string& module, const std::string& name) { bytes += "c" + module + "\n" + name + "\n"; }
  void text(const std::string& s) {
    bytes += 'X';
    u32(static_cast<uint32_t>(s.size()));
    bytes += s;
  }
  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      bytes += 'J';
      u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      bytes += "\x8a\x08";  // LONG1, 8 bytes little-endian two's complement
      for (int k = 0; k < 8; ++k) bytes += static_cast<char>((static_cast<uint64_t>(v) >> (8 * k)) & 0xff);
    }
  }
  void int_tuple(at::IntArrayRef values) {
    bytes += '(';
    for (int64_t v : values) integer(v);
    bytes += 't';
  }
  void op(char c) { bytes += c; }

 private:
  void u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) bytes += static_cast<char>((v >> (8 * k)) & 0xff);
  }
};

const char* storage_type_name(torch::Dtype dtype) {
  static const std::map<torch::Dtype, const char*> kNames = {
      {torch::kFloat32, "FloatStorage"}, {torch::kFloat64, "DoubleStorage"}, {torch::kFloat16, "HalfStorage"},
      {torch::kBFloat16, "BFloat16Storage"}, {torch::kInt64, "LongStorage"}, {torch::kInt32, "IntStorage"},
      {torch::kInt16, "ShortStorage"}, {torch::kInt8, "CharStorage"}, {torch::kUInt8, "ByteStorage"},
      {torch::kBool, "BoolStorage"}};
  auto it = kNames.find(dtype);
  if (it == kNames.end()) throw std::invalid_argument(std::string("no torch.save storage type for dtype ") + c10::toString(dtype));
  return it->second;
}

}  // namespace

std::string torch_save_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<torch::Tensor> storages;
  PickleWriter p;
  p.global("collections", "OrderedDict");
  p.op(')');
  p.op('R');  // OrderedDict()
  p.op('(');
  for (const auto& [name, t] : tensors) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    p.text(name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');  // persistent id ('storage', type, key, location, numel)
    p.text("storage");
    p.global("torch", storage_type_name(c.scalar_type()));
    p.text(std::to_string(storages.size()));
    p.text("cpu");
    p.integer(c.numel());
    p.op('t');
    p.op('Q');          // BINPERSID
    p.integer(0);       // storage offset
    p.int_tuple(c.sizes());
    p.int_tuple(c.strides());
    p.op('\x89');      // requires_grad False
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');          // backward hooks
    p.op('t');
    p.op('R');
    storages.push_back(c);
  }
  p.op('u');  // SETITEMS
  p.op('.');
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    out.append(static_cast<const char*>(data), n);
    return n;
  });
  writer.writeRecord("data.pkl", p.bytes.data(), p.bytes.size());
  for (size_t k = 0; k < storages.size(); ++k) {
    writer.writeRecord("data/" + std::to_string(k), storages[k].data_ptr(),
                       static_cast<size_t>(storages[k].numel()) * storages[k].element_size());
  }
  writer.writeEndOfFile();
  return out;
}

bool is_legacy_torch_save(const std::string& first_bytes) {
  // Legacy files start with the pickled magic number 0x1950a86a20f9469cfc6c (PROTO 2, LONG1 10).
  return first_bytes.size() >= 4 && static_cast<uint8_t>(first_bytes[0]) == 0x80 &&
         static_cast<uint8_t>(first_bytes[1]) == 0x02 && static_cast<uint8_t>(first_bytes[2]) == 0x8a &&
         static_cast<uint8_t>(first_bytes[3]) == 0x0a;
}

TorchSaveFile read_torch_save_file(const std::string& path) {
  try {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw std::runtime_error("cannot open file");
    std::string head(4, '\0');
    probe.read(head.data(), 4);
    head.resize(static_cast<size_t>(probe.gcount()));
    if (is_legacy_torch_save(head)) return read_legacy(path);
    if (head.rfind("PK", 0) != 0) throw std::runtime_error("not a torch.save file (neither a zip archive nor a legacy pickle)");
    return read_zip(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

model::TensorMap read_torch_save(const std::string& path) { return tensor_dict(read_torch_save_file(path), path); }

model::TensorMap tensor_dict(const TorchSaveFile& file, const std::string& path) {
  const PyValue& root = file.root();
  if (root.kind == PyValue::Kind::kObject) {
    throw std::runtime_error(path + ": holds a whole pickled model (" + root.s +
                             "), not a dict of tensors; a ProtoPNet of the reference is read by `ppnet import --reference`");
  }
  if (root.kind != PyValue::Kind::kDict) throw std::runtime_error(path + ": the saved object is not a dict of tensors");
  const PyValue* dict = &root;
  for (const char* wrapper : {"state_dict", "model"}) {
    const PyValue* inner = root.get(wrapper);
    if (inner && inner->kind == PyValue::Kind::kDict) {
      dict = inner;
      break;
    }
  }
  model::TensorMap out;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind == PyValue::Kind::kString && v->kind == PyValue::Kind::kTensor) out[k->s] = v->tensor;
  }
  if (out.empty()) throw std::runtime_error(path + ": the saved dict holds no tensors");
  return out;
}

}  // namespace ppnet::pipeline
