// The gRPC face of stimloop.v1.StimLoop: thin handlers that validate the
// request envelope, call the session core, and translate errors. Never
// throws: any exception from below becomes INTERNAL.
#ifndef STIMLOOP_SERVER_STIMLOOP_SERVICE_H_
#define STIMLOOP_SERVER_STIMLOOP_SERVICE_H_

#include "server/session_manager.h"
#include "stimloop/v1/stimloop.grpc.pb.h"

namespace stimloop {

class StimLoopService final : public v1::StimLoop::Service {
 public:
  // `sessions` must outlive the service.
  explicit StimLoopService(SessionManager* sessions) : sessions_(sessions) {}

  grpc::Status CreateSession(grpc::ServerContext* context,
                             const v1::CreateSessionRequest* request,
                             v1::Session* reply) override;
  grpc::Status GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                          v1::Session* reply) override;
  grpc::Status ListSessions(grpc::ServerContext* context,
                            const v1::ListSessionsRequest* request,
                            v1::ListSessionsResponse* reply) override;
  grpc::Status CloseSession(grpc::ServerContext* context,
                            const v1::CloseSessionRequest* request,
                            v1::Session* reply) override;
  grpc::Status NextStimuli(grpc::ServerContext* context, const v1::NextStimuliRequest* request,
                           v1::StimulusBatch* reply) override;
  grpc::Status ReportResponses(grpc::ServerContext* context,
                               const v1::ReportResponsesRequest* request,
                               v1::ReportResponsesAck* reply) override;
  grpc::Status GetSessionStats(grpc::ServerContext* context,
                               const v1::GetSessionRequest* request,
                               v1::SessionStats* reply) override;
  grpc::Status ListStimuli(grpc::ServerContext* context, const v1::ListStimuliRequest* request,
                           v1::ListStimuliResponse* reply) override;
  grpc::Status GetBestStimuli(grpc::ServerContext* context,
                              const v1::GetBestStimuliRequest* request,
                              v1::ListStimuliResponse* reply) override;
  // Streams until the session closes, the client cancels or the server shuts
  // down (checked at least every 200 ms).
  grpc::Status WatchSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                            grpc::ServerWriter<v1::SessionProgress>* writer) override;

 private:
  SessionManager* const sessions_;
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_STIMLOOP_SERVICE_H_
