// libFuzzer target: the input bytes, read by FuzzedDataProvider, become a
// script of up to 24 stimloop.v1 requests (create, next with or without a
// validation block, report, close, and the inspection calls) that are
// handed to StimLoopService in process, with no network, over a real
// SessionStore in a scratch directory. Whatever the script, every call
// must return a status: a crash, a sanitizer report or a leak is a bug.
//
// Configurations are cheap so that thousands of scripts run per second:
// 16..24 pixel images, generations of up to 8, mostly model-free
// optimizers; about one create in 32 asks for a model-based one with the
// smallest surrogate. Values are drawn near the validation limits (0, the
// bounds, NaN, inf, 1e308, ...) and ids are real ones or mangled copies.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_env.h"
#include "server/session_manager.h"
#include "server/session_store.h"
#include "server/stimloop_service.h"

namespace stimloop {
namespace {

constexpr int kMaxCalls = 24;
// A fresh store every this many inputs keeps the scratch file small.
constexpr int kInputsPerStore = 500;

// A string of up to `max_length` characters, 7-bit so that it is valid
// UTF-8: gRPC refuses a request with invalid UTF-8 in a string field before
// the service sees it (server/unparsed_request.h), so the service never
// gets one.
std::string PickString(FuzzedDataProvider& in, size_t max_length) {
  std::string s = in.ConsumeRandomLengthString(max_length);
  for (char& c : s) c &= 0x7f;
  return s;
}

double PickDouble(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 9)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return -1;
    case 3: return 1e9;
    case 4: return 1e308;
    case 5: return std::numeric_limits<double>::quiet_NaN();
    case 6: return std::numeric_limits<double>::infinity();
    case 7: return in.ConsumeFloatingPoint<double>();
    default: return in.ConsumeFloatingPointInRange<double>(0, 100);
  }
}

int PickSmallInt(FuzzedDataProvider& in, int typical_max) {
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: return -1;
    case 1: return in.ConsumeIntegral<int32_t>();
    default: return in.ConsumeIntegralInRange(0, typical_max);
  }
}

// A name from `names`, or now and then an arbitrary string.
std::string PickName(FuzzedDataProvider& in, const std::vector<std::string>& names) {
  const size_t i = in.ConsumeIntegralInRange<size_t>(0, names.size());
  return i < names.size() ? names[i] : PickString(in, 16);
}

void FillConfig(FuzzedDataProvider& in, v1::SessionConfig* config) {
  config->mutable_image()->set_height(in.ConsumeIntegralInRange(15, 24));
  config->mutable_image()->set_width(in.ConsumeIntegralInRange(15, 24));
  if (in.ConsumeBool()) config->mutable_image()->set_channels(in.ConsumeIntegralInRange(0, 4));
  const int neurons = in.ConsumeIntegralInRange(0, 4);
  config->set_num_neurons(neurons);
  config->set_generation_size(in.ConsumeIntegralInRange(0, 8));
  config->set_seed(in.ConsumeIntegral<uint64_t>());
  const bool model_based = in.ConsumeIntegralInRange(0, 31) == 0;
  config->mutable_optimizer()->set_name(
      model_based ? PickName(in, {"gradient_ascent", "portfolio"})
                  : PickName(in, {"random", "genetic", "cmaes", "adaptive_sampling"}));
  if (in.ConsumeBool()) {
    (*config->mutable_optimizer()->mutable_params())[PickName(
        in, {"elites", "selectivity", "mutation_rate", "mutation_size", "sigma0", "popsize"})] =
        PickDouble(in);
  }
  // A model-based session in the pixel space scans every pixel at creation
  // (gradient ascent's code range, a batch of images per 256 pixels), which
  // made those rare creates most of the time per input: they get the
  // spectral space, named or by default.
  config->mutable_image_space()->set_name(model_based ? PickName(in, {"spectral", ""})
                                                      : PickName(in, {"spectral", "pixel", ""}));
  auto& space_params = *config->mutable_image_space()->mutable_params();
  if (in.ConsumeBool()) {
    space_params[PickName(in, {"cutoff", "contrast"})] = PickDouble(in);
  } else if (config->image_space().name() != "pixel") {
    // A few frequencies keep codes and the CMA-ES covariance small: saving
    // a 256-dimensional covariance each generation was most of the time
    // per input.
    space_params["cutoff"] = in.ConsumeIntegralInRange(1, 6);
  }
  if (model_based) {
    auto& surrogate = *config->mutable_surrogate()->mutable_params();
    surrogate["ensemble_size"] = 1;
    surrogate["max_epochs"] = 1;
    surrogate["min_trials"] = 8;
    surrogate["gabor_scales"] = 1;
    surrogate["gabor_orientations"] = 2;
  }
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
      break;
    case 1:
      config->mutable_objective()->mutable_single_neuron()->set_index(PickSmallInt(in, neurons));
      break;
    case 2:
      for (int i = in.ConsumeIntegralInRange(0, neurons + 1); i > 0; --i) {
        config->mutable_objective()->mutable_weighted_sum()->add_weights(PickDouble(in));
      }
      break;
    default:
      config->mutable_objective()->mutable_population_control()->set_target(
          PickSmallInt(in, neurons));
      config->mutable_objective()->mutable_population_control()->set_others_weight(
          PickDouble(in));
  }
  if (in.ConsumeBool()) {
    config->mutable_repeats()->set_per_generation(PickSmallInt(in, 3));
    config->mutable_repeats()->set_max_presentations(PickSmallInt(in, 4));
  }
  if (in.ConsumeIntegralInRange(0, 7) == 0) {
    (*config->mutable_metadata())[PickString(in, 8)] =
        PickString(in, 16);
  }
  if (in.ConsumeIntegralInRange(0, 15) == 0) {
    config->mutable_reference_images()->set_dir(PickString(in, 8));
  }
}

// One script: the sessions it created and the stimuli it was handed.
struct Script {
  std::vector<std::string> sessions;
  std::vector<std::string> stimuli;

  std::string SessionId(FuzzedDataProvider& in) const {
    if (sessions.empty() || in.ConsumeIntegralInRange(0, 15) == 0) {
      return PickString(in, 12);
    }
    return sessions[in.ConsumeIntegralInRange<size_t>(0, sessions.size() - 1)];
  }
  // A stimulus id handed out, one of another form, or a mangled one.
  std::string StimulusId(FuzzedDataProvider& in) const {
    if (stimuli.empty() || in.ConsumeIntegralInRange(0, 15) == 0) {
      return PickString(in, 12);
    }
    std::string id = stimuli[in.ConsumeIntegralInRange<size_t>(0, stimuli.size() - 1)];
    if (in.ConsumeIntegralInRange(0, 15) == 0) id += PickString(in, 2);
    return id;
  }
};

void FillReport(FuzzedDataProvider& in, const Script& script, v1::ReportResponsesRequest* request) {
  request->set_session_id(script.SessionId(in));
  request->set_request_id(PickName(in, {"r1", "r2", "r3", ""}));
  const int responses = in.ConsumeIntegralInRange(0, 10);
  const bool typical_rates = in.ConsumeIntegralInRange(0, 3) != 0;
  for (int i = 0; i < responses; ++i) {
    v1::Response* response = request->add_responses();
    response->set_stimulus_id(script.StimulusId(in));
    response->set_skipped(in.ConsumeIntegralInRange(0, 7) == 0);
    const int rates = in.ConsumeIntegralInRange(0, 3);
    for (int r = 0; r < rates; ++r) {
      response->add_rates(typical_rates ? in.ConsumeFloatingPointInRange<double>(0, 50)
                                        : PickDouble(in));
    }
  }
}

// The service over a store in the scratch directory; a new store every
// kInputsPerStore inputs.
class Harness {
 public:
  StimLoopService& Service() {
    if (store_ == nullptr || ++inputs_ % kInputsPerStore == 0) {
      service_.reset();
      sessions_.reset();
      store_.reset();
      StoreOptions options;
      options.sync = StoreOptions::Sync::kNormal;
      options.check_integrity = false;
      options.new_store = true;
      auto store = SessionStore::Open(FreshFuzzDir("service"), options);
      if (!store.ok()) abort();  // the harness's own set-up, not a finding
      store_ = *std::move(store);
    }
    // Sessions of one input only: a fresh manager each time, so that the
    // open-session limit and memory do not carry over between inputs.
    service_.reset();
    sessions_ = std::make_unique<SessionManager>(store_.get(), 4, AssetsDir(), &pool_);
    service_ = std::make_unique<StimLoopService>(sessions_.get());
    return *service_;
  }

 private:
  int inputs_ = 0;
  // Shared by every session, as in the server: threads live for the whole
  // run (threads made and ended per session leak LibTorch's and libgomp's
  // per-thread allocations, which are not stimloop's to free).
  WorkPool pool_{2};
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<StimLoopService> service_;
};

void RunScript(FuzzedDataProvider& in, StimLoopService& service) {
  Script script;
  for (int call = 0; call < kMaxCalls && in.remaining_bytes() > 0; ++call) {
    grpc::ServerContext context;
    switch (in.ConsumeIntegralInRange(0, 9)) {
      case 0: {
        v1::CreateSessionRequest request;
        FillConfig(in, request.mutable_config());
        v1::Session reply;
        if (service.CreateSession(&context, &request, &reply).ok()) {
          script.sessions.push_back(reply.id());
        }
        break;
      }
      case 1:
      case 2: {
        v1::NextStimuliRequest request;
        request.set_session_id(script.SessionId(in));
        request.set_max_count(PickSmallInt(in, 8));
        if (in.ConsumeIntegralInRange(0, 7) == 0) {
          request.mutable_validation()->set_candidates(PickSmallInt(in, 4));
          request.mutable_validation()->set_presentations(PickSmallInt(in, 3));
          request.mutable_validation()->set_include_best_guess(in.ConsumeBool());
        }
        v1::StimulusBatch reply;
        if (service.NextStimuli(&context, &request, &reply).ok()) {
          for (const v1::Stimulus& s : reply.stimuli()) script.stimuli.push_back(s.id());
        }
        break;
      }
      case 3:
      case 4: {
        v1::ReportResponsesRequest request;
        FillReport(in, script, &request);
        v1::ReportResponsesAck reply;
        service.ReportResponses(&context, &request, &reply).ok();
        break;
      }
      case 5: {
        v1::CloseSessionRequest request;
        request.set_session_id(script.SessionId(in));
        v1::Session reply;
        service.CloseSession(&context, &request, &reply).ok();
        break;
      }
      case 6: {
        v1::GetSessionRequest request;
        request.set_session_id(script.SessionId(in));
        v1::Session session;
        service.GetSession(&context, &request, &session).ok();
        v1::SessionStats stats;
        service.GetSessionStats(&context, &request, &stats).ok();
        break;
      }
      case 7: {
        v1::ListStimuliRequest request;
        request.set_session_id(script.SessionId(in));
        request.set_first_generation(in.ConsumeIntegralInRange<int64_t>(-1, 4));
        request.set_last_generation(in.ConsumeIntegralInRange<int64_t>(-1, 4));
        request.set_include_png(in.ConsumeBool());
        v1::ListStimuliResponse reply;
        service.ListStimuli(&context, &request, &reply).ok();
        break;
      }
      case 8: {
        v1::GetBestStimuliRequest request;
        request.set_session_id(script.SessionId(in));
        request.set_k(PickSmallInt(in, 5));
        request.set_include_png(in.ConsumeBool());
        v1::ListStimuliResponse reply;
        service.GetBestStimuli(&context, &request, &reply).ok();
        break;
      }
      default: {
        v1::ListSessionsRequest request;
        v1::ListSessionsResponse reply;
        service.ListSessions(&context, &request, &reply).ok();
      }
    }
  }
}

}  // namespace
}  // namespace stimloop

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  stimloop::InitFuzzProcess();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static stimloop::Harness* harness = new stimloop::Harness;
  FuzzedDataProvider in(data, size);
  stimloop::RunScript(in, harness->Service());
  return 0;
}
