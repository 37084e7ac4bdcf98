// Keep the gallery's progress current while jobs run: follow each unfinished batch's server-sent
// events (pushed when one of its jobs changes) and update bars, counts and job states in place;
// reload images when a job's state changes. A batch whose stream fails is polled instead.
"use strict";

const POLL_MS = 2000;

function pct(progress) {
  return Math.round(progress * 100);
}

function bust(img, version) {
  if (!img) return;
  const url = new URL(img.getAttribute("src"), window.location.href);
  url.searchParams.set("v", version);
  img.setAttribute("src", url.pathname + url.search);
}

function renderCounts(counts) {
  const box = document.createElement("span");
  box.className = "counts";
  for (const [state, n] of Object.entries(counts)) {
    const item = document.createElement("span");
    item.className = "state-" + state;
    item.textContent = n + " " + state;
    box.appendChild(item);
  }
  return box;
}

function updateJob(section, job) {
  const tile = section.querySelector('.job[data-job-id="' + job.id + '"]');
  if (!tile) return false;
  const changed = tile.dataset.state !== job.state;
  tile.querySelector(".job-pct").textContent = pct(job.progress) + "%";
  if (!changed) return false;
  tile.dataset.state = job.state;
  tile.className = "job state-" + job.state;
  tile.querySelector(".job-state").textContent = job.state;
  if (job.result && job.kind !== "video") {
    const thumb = tile.querySelector("img.thumb");
    if (thumb) thumb.setAttribute("src", job.result.thumbnail_url + "?size=256");
  }
  bust(tile.querySelector("img.plot"), job.state);
  return true;
}

async function refreshBatch(section) {
  if (section.dataset.streaming === "true") return;
  const id = section.dataset.batchId;
  const response = await fetch("/v1/batches/" + id, { credentials: "same-origin" });
  if (!response.ok) return;
  showBatch(section, await response.json());
}

function follow(section) {
  if (!window.EventSource) return;
  const source = new EventSource("/v1/batches/" + section.dataset.batchId + "/events");
  section.dataset.streaming = "true";
  source.addEventListener("batch", (event) => {
    const batch = JSON.parse(event.data);
    showBatch(section, batch);
    if (batch.finished) source.close();
  });
  source.onerror = () => {
    // The stream ends when the batch is finished; otherwise fall back to polling.
    source.close();
    section.dataset.streaming = "false";
  };
}

function showBatch(section, batch) {
  const bar = section.querySelector(".progress");
  bar.setAttribute("aria-valuenow", pct(batch.progress));
  bar.querySelector(".bar").style.width = (batch.progress * 100).toFixed(1) + "%";
  section.querySelector(".pct").textContent = pct(batch.progress) + "%";
  section.querySelector(".counts").replaceWith(renderCounts(batch.counts));
  let changed = false;
  for (const job of batch.jobs) changed = updateJob(section, job) || changed;
  if (changed || batch.finished) bust(section.querySelector("img.sheet-img"), Math.round(batch.progress * 1000));
  section.dataset.outcome = batch.counts.cancelled ? "cancelled" : batch.counts.failed ? "failed" : "succeeded";
  if (batch.finished) {
    section.dataset.finished = "true";
    if (batch.kind === "video") window.location.reload(); // show the result's player
  }
}

async function newerBatchExists() {
  const gallery = document.getElementById("gallery");
  if (!gallery || gallery.dataset.newest === "0" && document.querySelector(".batch")) return false;
  const response = await fetch("/v1/batches?limit=1", { credentials: "same-origin" });
  if (!response.ok) return false;
  const page = await response.json();
  const newest = page.items.length ? page.items[0].id : 0;
  return newest > Number(gallery.dataset.newest || 0);
}

async function poll() {
  try {
    const running = document.querySelectorAll('.batch[data-finished="false"]');
    await Promise.all(Array.from(running, refreshBatch));
    if (await newerBatchExists()) window.location.reload();
  } catch (error) {
    console.warn("gallery refresh failed", error);
  }
  window.setTimeout(poll, POLL_MS);
}

document.querySelectorAll('.batch[data-finished="false"]').forEach(follow);
window.setTimeout(poll, POLL_MS);
