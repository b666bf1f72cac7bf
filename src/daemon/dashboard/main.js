'use strict';
// Start-up and polling: the study and the queue every 2 s; the run panel follows its event stream.

initStudy();
initRun();
async function poll() {
  await Promise.all([refreshStudy(), refreshQueue()]);
  showNewestRun();
}
poll();
setInterval(poll, 2000);
