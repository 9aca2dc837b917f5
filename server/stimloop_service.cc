#include "server/stimloop_service.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"

namespace stimloop {
namespace {

// Runs a handler body; an exception (e.g. from LibTorch) becomes INTERNAL
// instead of taking the server down.
template <typename Body>
grpc::Status Guarded(const char* rpc, Body body) {
  try {
    return ToGrpc(body());
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat(rpc, ": ", e.what()));
  }
}

}  // namespace

grpc::Status StimLoopService::CreateSession(grpc::ServerContext*,
                                            const v1::CreateSessionRequest* request,
                                            v1::Session* reply) {
  return Guarded("CreateSession", [&]() -> absl::Status {
    auto session = sessions_->Create(request->config());
    if (!session.ok()) return session.status();
    (*session)->Describe(/*with_images=*/true, reply);
    return absl::OkStatus();
  });
}

grpc::Status StimLoopService::GetSession(grpc::ServerContext*,
                                         const v1::GetSessionRequest* request,
                                         v1::Session* reply) {
  return Guarded("GetSession", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    (*session)->Describe(/*with_images=*/true, reply);
    return absl::OkStatus();
  });
}

grpc::Status StimLoopService::ListSessions(grpc::ServerContext*, const v1::ListSessionsRequest*,
                                           v1::ListSessionsResponse* reply) {
  return Guarded("ListSessions", [&]() -> absl::Status {
    auto sessions = sessions_->ListAll();
    if (!sessions.ok()) return sessions.status();
    for (const auto& session : *sessions) {
      session->Describe(/*with_images=*/false, reply->add_sessions());
    }
    return absl::OkStatus();
  });
}

grpc::Status StimLoopService::CloseSession(grpc::ServerContext*,
                                           const v1::CloseSessionRequest* request,
                                           v1::Session* reply) {
  return Guarded("CloseSession", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    if (absl::Status s = (*session)->Close(); !s.ok()) return s;
    (*session)->Describe(/*with_images=*/true, reply);
    return absl::OkStatus();
  });
}

grpc::Status StimLoopService::NextStimuli(grpc::ServerContext*,
                                          const v1::NextStimuliRequest* request,
                                          v1::StimulusBatch* reply) {
  return Guarded("NextStimuli", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    if (request->has_validation()) {
      return (*session)->Validate(request->validation(), request->max_count(), reply);
    }
    return (*session)->Next(request->max_count(), reply);
  });
}

grpc::Status StimLoopService::ReportResponses(grpc::ServerContext*,
                                              const v1::ReportResponsesRequest* request,
                                              v1::ReportResponsesAck* reply) {
  return Guarded("ReportResponses", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    return (*session)->Report(request->request_id(), request->responses(), reply);
  });
}

grpc::Status StimLoopService::GetSessionStats(grpc::ServerContext*,
                                              const v1::GetSessionRequest* request,
                                              v1::SessionStats* reply) {
  return Guarded("GetSessionStats", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    (*session)->Stats(reply);
    return absl::OkStatus();
  });
}

grpc::Status StimLoopService::ListStimuli(grpc::ServerContext*,
                                          const v1::ListStimuliRequest* request,
                                          v1::ListStimuliResponse* reply) {
  return Guarded("ListStimuli", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    return (*session)->ListStimuli(request->first_generation(), request->last_generation(),
                                   request->include_png(), reply);
  });
}

grpc::Status StimLoopService::GetBestStimuli(grpc::ServerContext*,
                                             const v1::GetBestStimuliRequest* request,
                                             v1::ListStimuliResponse* reply) {
  return Guarded("GetBestStimuli", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    return (*session)->BestStimuli(request->k(), request->include_png(), reply);
  });
}

grpc::Status StimLoopService::WatchSession(grpc::ServerContext* context,
                                           const v1::GetSessionRequest* request,
                                           grpc::ServerWriter<v1::SessionProgress>* writer) {
  return Guarded("WatchSession", [&]() -> absl::Status {
    auto session = sessions_->Find(request->session_id());
    if (!session.ok()) return session.status();
    int64_t seen = -1;
    while (!context->IsCancelled()) {
      v1::SessionProgress progress;
      if (!(*session)->AwaitProgress(&seen, absl::Milliseconds(200), &progress)) continue;
      if (!writer->Write(progress)) break;  // the client went away
      if (progress.status() == v1::SESSION_STATUS_CLOSED) break;
    }
    return absl::OkStatus();
  });
}

}  // namespace stimloop
