export { adminAsk, type GraphqlSource, identityOf } from './admin-requests.ts';
export {
  HEALTH_POLL_MS,
  LEADER_POLL_MS,
  MEMBER_POLL_MS,
  SUBSCRIBER_QUEUE_MAX,
  SUBSCRIBERS_MAX,
} from './events.ts';
export { executeGraphql, type GraphqlRequest } from './execute.ts';
export { GRAPHQL_LIMITS_DEFAULT, type GraphqlLimits } from './limits.ts';
export { SCHEMA_SDL, schema } from './schema.ts';
export {
  attachGraphqlWs,
  GRAPHQL_WS_PATH,
  type GraphqlWsHandle,
  type GraphqlWsOptions,
} from './ws.ts';
