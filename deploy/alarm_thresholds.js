// Alarm thresholds derived from serverless.yml, so changing the API function's timeout moves its
// duration alarm with it (CloudFormation has no arithmetic): 80% of the timeout, in milliseconds.
module.exports = async ({ resolveVariable }) => {
  const timeout = Number(await resolveVariable("self:functions.api.timeout"));
  return { apiDurationMs: Math.round(timeout * 1000 * 0.8) };
};
