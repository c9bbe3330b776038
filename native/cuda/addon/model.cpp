// The Model class: model/gpt.h's GptModel for JavaScript. step, loss and logits run on
// libuv's thread pool (Napi::AsyncWorker) and return Promises, so the JS thread stays
// free for the progress bar and Ctrl-C while the device works. Their inputs are copied
// before the work is queued (the caller may reuse its arrays at once), and a model runs
// one operation at a time: a call while another is in flight is refused, never queued
// behind it, because the Backend contract already orders calls and a second one in
// flight means a caller bug.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "glue.h"

namespace kiln::addon {
namespace {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {
                           InstanceMethod<&ModelWrap::num_params>("numParams"),
                           InstanceMethod<&ModelWrap::device_bytes>("deviceBytes"),
                           InstanceMethod<&ModelWrap::recompute_saved_bytes>("recomputeSavedBytes"),
                           InstanceMethod<&ModelWrap::load>("load"),
                           InstanceMethod<&ModelWrap::step>("step"),
                           InstanceMethod<&ModelWrap::loss>("loss"),
                           InstanceMethod<&ModelWrap::logits>("logits"),
                           InstanceMethod<&ModelWrap::save>("save"),
                           InstanceMethod<&ModelWrap::dispose>("dispose"),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (!info.IsConstructCall()) throw_type(info.Env(), "Model must be called with new");
    if (info.Length() < 3) throw_type(info.Env(), "new Model(dims, layout, options)");
    dims_ = parse_dims(info[0]);
    ModelOptions options = parse_options(info[2]);
    max_batch_ = options.max_batch;
    model_ = std::make_unique<GptModel>(dims_, parse_layout(info[1]), options);
  }

  // The worker's side of an operation: run on the pool, settle on the JS thread.
  GptModel& model() { return *model_; }
  void finished() { busy_ = false; }

 private:
  // The model, checked usable by a synchronous method.
  GptModel& idle(Napi::Env env, const char* method) {
    if (!model_) throw_error(env, std::string("Model.") + method + ": the model was disposed");
    if (busy_)
      throw_error(env, std::string("Model.") + method + ": a step, loss or logits call is still running on this model; await it first");
    return *model_;
  }

  Napi::Value num_params(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(idle(info.Env(), "numParams").num_params()));
  }
  Napi::Value device_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(idle(info.Env(), "deviceBytes").device_bytes()));
  }
  Napi::Value recompute_saved_bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(idle(info.Env(), "recomputeSavedBytes").recompute_saved_bytes()));
  }

  // A Float32Array of exactly n elements (or null where allowed), as a pointer to its data.
  static const float* f32_arg(const Napi::CallbackInfo& info, size_t i, const char* what, size_t n, bool nullable) {
    if (nullable && (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined())) return nullptr;
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_type(info.Env(), std::string("Model.load: ") + what + " must be a Float32Array" + (nullable ? " or null" : ""));
    Napi::Float32Array a = info[i].As<Napi::Float32Array>();
    if (a.ElementLength() != n)
      throw_type(info.Env(), std::string("Model.load: ") + what + " has " + std::to_string(a.ElementLength()) + " values, the model " +
                                 std::to_string(n));
    return a.Data();
  }

  void load(const Napi::CallbackInfo& info) {
    GptModel& m = idle(info.Env(), "load");
    const size_t n = m.num_params();
    const float* params = f32_arg(info, 0, "params", n, false);
    const float* mom = f32_arg(info, 1, "m", n, true);
    const float* vel = f32_arg(info, 2, "v", n, true);
    m.load(params, mom, vel, int_arg(info, 3, "Model.load: step", 0));
  }

  Napi::Value save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GptModel& m = idle(env, "save");
    const size_t n = m.num_params();
    Napi::Float32Array params = Napi::Float32Array::New(env, n);
    Napi::Float32Array mom = Napi::Float32Array::New(env, n);
    Napi::Float32Array vel = Napi::Float32Array::New(env, n);
    int step = 0;
    m.save(params.Data(), mom.Data(), vel.Data(), &step);
    Napi::Object out = Napi::Object::New(env);
    out.Set("params", params);
    out.Set("m", mom);
    out.Set("v", vel);
    out.Set("step", step);
    return out;
  }

  void dispose(const Napi::CallbackInfo& info) {
    if (busy_) throw_error(info.Env(), "Model.dispose: a step, loss or logits call is still running on this model; await it first");
    model_.reset();  // frees the device memory now rather than at garbage collection
  }

  // Token ids of a call, copied, each checked in [0, vocab): an id outside it would index
  // past the embedding table on the device.
  std::vector<int> tokens_arg(const Napi::CallbackInfo& info, size_t i, const char* method, const char* what, size_t n) {
    Napi::Env env = info.Env();
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw_type(env, std::string("Model.") + method + ": " + what + " must be an Int32Array");
    Napi::Int32Array a = info[i].As<Napi::Int32Array>();
    if (n && a.ElementLength() != n)
      throw_type(env, std::string("Model.") + method + ": " + what + " has " + std::to_string(a.ElementLength()) +
                          " ids, microBatches * B * T is " + std::to_string(n));
    std::vector<int> out(a.Data(), a.Data() + a.ElementLength());
    for (size_t k = 0; k < out.size(); k++)
      if (out[k] < 0 || out[k] >= dims_.vocab)
        throw_type(env, std::string("Model.") + method + ": " + what + "[" + std::to_string(k) + "] = " + std::to_string(out[k]) +
                            " is outside the vocabulary (" + std::to_string(dims_.vocab) + ")");
    return out;
  }

  struct Batch {
    std::vector<int> inputs, targets;
    int B, T, micro;
  };
  Batch batch_arg(const Napi::CallbackInfo& info, const char* method) {
    Batch b;
    const std::string m = std::string("Model.") + method + ": ";
    b.B = int_arg(info, 2, (m + "B").c_str(), 1);
    b.T = int_arg(info, 3, (m + "T").c_str(), 1);
    b.micro = int_arg(info, 4, (m + "microBatches").c_str(), 1);
    if (b.B > max_batch_)
      throw_type(info.Env(), m + "B = " + std::to_string(b.B) + " is more than the model's maxBatch " + std::to_string(max_batch_));
    if (b.T > dims_.block)
      throw_type(info.Env(), m + "T = " + std::to_string(b.T) + " is more than the block size " + std::to_string(dims_.block));
    const size_t n = static_cast<size_t>(b.B) * b.T * b.micro;
    b.inputs = tokens_arg(info, 0, method, "inputs", n);
    b.targets = tokens_arg(info, 1, method, "targets", n);
    return b;
  }

  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value loss(const Napi::CallbackInfo& info);
  Napi::Value logits(const Napi::CallbackInfo& info);

  // Starts `worker` (a ModelWorker) after marking the model busy, or rejects when it
  // cannot run; the synchronous checks above throw, and the call then returns a
  // rejected promise too, so callers handle one failure path.
  template <class Worker, class... A>
  Napi::Value start(const Napi::CallbackInfo& info, const char* method, A&&... args);

  ModelDims dims_{};
  int max_batch_ = 1;
  std::unique_ptr<GptModel> model_;
  bool busy_ = false;  // only touched on the JS thread
};

// One asynchronous operation. Holds a strong reference to the Model's JS object, so the
// model cannot be garbage-collected (and its device memory freed) while the pool uses it.
class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, ModelWrap* wrap, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), wrap_(wrap),
        self_(Napi::Persistent(wrap->Value())) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  GptModel& model() { return wrap_->model(); }
  virtual Napi::Value result(Napi::Env env) = 0;
  void OnOK() override {
    wrap_->finished();
    deferred_.Resolve(result(Env()));
  }
  void OnError(const Napi::Error& e) override {
    wrap_->finished();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  ModelWrap* wrap_;
  Napi::ObjectReference self_;
};

class StepWorker : public ModelWorker {
 public:
  StepWorker(Napi::Env env, ModelWrap* wrap, std::vector<int> inputs, std::vector<int> targets, int B, int T, int micro,
             StepHyperParams hp)
      : ModelWorker(env, wrap, "kiln:Model.step"), inputs_(std::move(inputs)), targets_(std::move(targets)), B_(B), T_(T),
        micro_(micro), hp_(hp) {}
  void Execute() override { result_ = model().step(inputs_.data(), targets_.data(), B_, T_, micro_, hp_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", result_.loss);
    out.Set("gradNorm", result_.grad_norm);
    return out;
  }

 private:
  std::vector<int> inputs_, targets_;
  int B_, T_, micro_;
  StepHyperParams hp_;
  StepResult result_{};
};

class LossWorker : public ModelWorker {
 public:
  LossWorker(Napi::Env env, ModelWrap* wrap, std::vector<int> inputs, std::vector<int> targets, int B, int T, int micro)
      : ModelWorker(env, wrap, "kiln:Model.loss"), inputs_(std::move(inputs)), targets_(std::move(targets)), B_(B), T_(T), micro_(micro) {}
  void Execute() override { loss_ = model().loss(inputs_.data(), targets_.data(), B_, T_, micro_); }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, loss_); }

 private:
  std::vector<int> inputs_, targets_;
  int B_, T_, micro_;
  float loss_ = 0;
};

class LogitsWorker : public ModelWorker {
 public:
  LogitsWorker(Napi::Env env, ModelWrap* wrap, std::vector<int> context, int vocab)
      : ModelWorker(env, wrap, "kiln:Model.logits"), context_(std::move(context)), out_(static_cast<size_t>(vocab)) {}
  void Execute() override { model().logits(context_.data(), static_cast<int>(context_.size()), out_.data()); }
  Napi::Value result(Napi::Env env) override {
    Napi::Float32Array a = Napi::Float32Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), a.Data());
    return a;
  }

 private:
  std::vector<int> context_;
  std::vector<float> out_;
};

template <class Worker, class... A>
Napi::Value ModelWrap::start(const Napi::CallbackInfo& info, const char* method, A&&... args) {
  Napi::Env env = info.Env();
  idle(env, method);
  auto* worker = new Worker(env, this, std::forward<A>(args)...);
  Napi::Promise promise = worker->promise();
  busy_ = true;
  worker->Queue();  // the worker deletes itself once settled
  return promise;
}

// Rejected promise for an error thrown before the work could be queued.
template <class F>
Napi::Value settle_sync_errors(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  } catch (const std::exception& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(Napi::Error::New(env, e.what()).Value());
    return d.Promise();
  }
}

Napi::Value ModelWrap::step(const Napi::CallbackInfo& info) {
  return settle_sync_errors(info.Env(), [&]() -> Napi::Value {
    idle(info.Env(), "step");
    Batch b = batch_arg(info, "step");
    Napi::Object hp = object_arg(info, 5, "Model.step: hp");
    StepHyperParams h{};
    h.lr = finite_number(hp, "hp", "lr");
    h.weight_decay = finite_number(hp, "hp", "weightDecay");
    h.beta1 = finite_number(hp, "hp", "beta1");
    h.beta2 = finite_number(hp, "hp", "beta2");
    h.eps = finite_number(hp, "hp", "eps");
    h.grad_clip = finite_number(hp, "hp", "gradClip");
    h.dropout_p = finite_number(hp, "hp", "dropoutP");
    if (h.dropout_p < 0 || h.dropout_p >= 1) throw_type(info.Env(), "Model.step: hp.dropoutP must be in [0, 1)");
    const double seed = finite_number(hp, "hp", "dropoutSeed");
    if (seed < 0 || seed > 4294967295.0 || seed != std::floor(seed))
      throw_type(info.Env(), "Model.step: hp.dropoutSeed must be a 32-bit unsigned integer");
    h.dropout_seed = static_cast<uint32_t>(seed);
    return start<StepWorker>(info, "step", std::move(b.inputs), std::move(b.targets), b.B, b.T, b.micro, h);
  });
}

Napi::Value ModelWrap::loss(const Napi::CallbackInfo& info) {
  return settle_sync_errors(info.Env(), [&]() -> Napi::Value {
    idle(info.Env(), "loss");
    Batch b = batch_arg(info, "loss");
    return start<LossWorker>(info, "loss", std::move(b.inputs), std::move(b.targets), b.B, b.T, b.micro);
  });
}

Napi::Value ModelWrap::logits(const Napi::CallbackInfo& info) {
  return settle_sync_errors(info.Env(), [&]() -> Napi::Value {
    idle(info.Env(), "logits");
    std::vector<int> context = tokens_arg(info, 0, "logits", "context", 0);
    if (context.empty() || static_cast<int>(context.size()) > dims_.block)
      throw_type(info.Env(), "Model.logits: context must hold 1 to " + std::to_string(dims_.block) + " tokens, not " +
                                 std::to_string(context.size()));
    return start<LogitsWorker>(info, "logits", std::move(context), dims_.vocab);
  });
}

}  // namespace

void init_model(Napi::Env env, Napi::Object exports) { exports.Set("Model", ModelWrap::define(env)); }

}  // namespace kiln::addon
