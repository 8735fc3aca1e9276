(() => {
  const $ = id => document.getElementById(id);
  const data = JSON.parse($('v-data').textContent);
  const group = $('v-group'), pick = $('v-pick'), slider = $('v-slider');
  let shown = null;
  data.groups.forEach((g, i) => group.add(new Option(g.label, i)));
  function frame() {
    const f = shown.frames[slider.value], box = $('v-box');
    $('v-img').src = f.img;
    box.hidden = !f.box;
    if (f.box) box.src = f.box;
    $('v-cap').textContent = f.cap;
    $('v-nums').replaceChildren(...f.rows.map(([name, value]) => {
      const tr = document.createElement('tr');
      tr.insertCell().textContent = name;
      tr.insertCell().textContent = value;
      return tr;
    }));
  }
  function trajectory() {
    const picks = data.groups[group.value].picks, choice = picks.find(p => p[0] === pick.value) || picks[0];
    shown = data.trajectories[choice[1]];
    $('v-which').textContent = choice[2] + '. ' + shown.title;
    $('v-orig').src = shown.original;
    slider.max = shown.frames.length - 1;
    slider.value = shown.frames.length - 1;
    frame();
  }
  function picks() {
    const keep = pick.value;
    pick.replaceChildren(...data.groups[group.value].picks.map(p => new Option(p[0], p[0])));
    if (keep) pick.value = keep;
    trajectory();
  }
  group.addEventListener('change', picks);
  pick.addEventListener('change', trajectory);
  slider.addEventListener('input', frame);
  document.addEventListener('keydown', e => {
    if ((e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') || e.target.closest('input, select, textarea')) return;
    const r = $('viewer').getBoundingClientRect();
    if (r.bottom < 0 || r.top > innerHeight) return;  // only while the viewer is on screen
    slider.value = +slider.value + (e.key === 'ArrowRight' ? 1 : -1);
    frame();
    e.preventDefault();
  });
  picks();
})();
