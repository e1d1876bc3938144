// edgeflags page-side helper: registers the service worker and reports its state.
// Usage: import { registerServiceWorker } from '/sw/register.js';
//        const sw = await registerServiceWorker({ onUpdate: (apply) => confirm('Update?') && apply() });

/**
 * Registers the edgeflags service worker.
 * @param {{url?: string, type?: 'classic'|'module', onUpdate?: (apply: () => void) => void,
 *          onState?: (state: string) => void}} options
 */
export async function registerServiceWorker(options = {}) {
  const { url = '/sw.js', type = 'classic', onUpdate, onState = () => {} } = options;
  if (!('serviceWorker' in navigator)) {
    onState('unsupported');
    return null;
  }
  const reg = await navigator.serviceWorker.register(url, { type, scope: '/' });
  const offerUpdate = (worker) => {
    onState('update-waiting');
    if (onUpdate) onUpdate(() => worker.postMessage({ type: 'SKIP_WAITING' }));
  };
  if (reg.waiting && navigator.serviceWorker.controller) offerUpdate(reg.waiting);
  reg.addEventListener('updatefound', () => {
    const worker = reg.installing;
    if (!worker) return;
    onState('installing');
    worker.addEventListener('statechange', () => {
      if (worker.state === 'installed') {
        if (navigator.serviceWorker.controller) offerUpdate(worker);
        else onState('installed');
      }
    });
  });
  // Reload once when a new version takes over, in every tab (not on the first install).
  const hadController = Boolean(navigator.serviceWorker.controller);
  let reloaded = false;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (reloaded || !hadController) return;
    reloaded = true;
    window.location.reload();
  });
  await navigator.serviceWorker.ready;
  onState('ready');
  return reg;
}
