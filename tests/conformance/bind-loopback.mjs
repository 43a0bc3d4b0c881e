// Preloaded (node --import) into the cache-tests origin server by
// run-cache-tests.sh. The server listens on a bare port, which Node binds to
// every interface; this makes such a listen bind 127.0.0.1 only. Listens that
// name a host, a path or a handle are left alone, and no test logic changes.
import net from 'node:net'

const originalListen = net.Server.prototype.listen
const isPort = value =>
  typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))

net.Server.prototype.listen = function (...args) {
  const [first, second] = args
  if (isPort(first) && (args.length === 1 || typeof second === 'function')) {
    return originalListen.call(this, Number(first), '127.0.0.1', ...args.slice(1))
  }
  if (first && typeof first === 'object' && !Array.isArray(first) &&
      'port' in first && first.host === undefined && first.path === undefined) {
    return originalListen.call(this, { ...first, host: '127.0.0.1' }, ...args.slice(1))
  }
  return originalListen.apply(this, args)
}
