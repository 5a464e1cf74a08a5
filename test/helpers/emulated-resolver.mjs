// Loaded with `node --import` into a CLI process under test: host names ending in
// `.unresolvable.test` fail to resolve (ENOTFOUND) at once, as a resolver would answer, so
// that no DNS query leaves the machine. Every other name goes to the real dns.lookup.
import dns from 'node:dns';

const realLookup = dns.lookup;
dns.lookup = function emulatedLookup(hostname, options, callback) {
  const done = typeof options === 'function' ? options : callback;
  if (typeof hostname === 'string' && hostname.endsWith('.unresolvable.test')) {
    const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
      code: 'ENOTFOUND',
      errno: -3008,
      syscall: 'getaddrinfo',
      hostname,
    });
    process.nextTick(done, error);
    return {};
  }
  return realLookup.call(this, hostname, options, callback);
};
