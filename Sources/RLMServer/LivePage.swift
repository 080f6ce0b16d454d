/// The page at `/`: runs in progress and recent, and for one run its tree of nodes and a
/// timeline of sub-calls, live over server-sent events. Self-contained: no remote assets.
/// Data comes from `/v1/runs` with the bearer token given in the page (kept in sessionStorage)
/// or in the address as `#token=…`.
enum LivePage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>swift-rlm · live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:10px 18px;display:flex;gap:16px;align-items:center}
header h1{font-size:16px;margin:0;font-weight:600}
header input{font:inherit;padding:3px 6px;width:260px}
main{display:grid;grid-template-columns:minmax(320px,40%) 1fr;gap:14px;padding:14px}
section{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:10px 12px;overflow:auto}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#5a6472;margin:2px 0 8px}
table{border-collapse:collapse;width:100%}td,th{padding:4px 6px;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:top}
tr.run{cursor:pointer}tr.run:hover,tr.sel{background:#eef4ff}
.st{font-size:11px;padding:1px 6px;border-radius:9px;color:#fff;white-space:nowrap}
.running{background:#2a7de1}.answered{background:#2f9e44}.limit_reached{background:#e8890c}.failed{background:#d6336c}.cancelled{background:#868e96}
.q{max-width:340px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
ul.tree{list-style:none;padding-left:16px;margin:4px 0}ul.tree li{margin:3px 0}
.node{font-family:ui-monospace,monospace;font-size:12px}
.muted{color:#7a8594}#err{color:#d6336c}
svg text{font:11px system-ui,sans-serif}
</style></head><body>
<header><h1>swift-rlm · live</h1><label>token <input id="token" type="password" placeholder="bearer token (if the server has tenants)"></label>
<span id="err"></span><span class="muted" id="clock"></span></header>
<main>
<section><h2>Runs</h2><table><thead><tr><th>status</th><th>query</th><th>calls</th><th>tokens</th><th>time</th></tr></thead><tbody id="runs"></tbody></table></section>
<section><h2 id="title">Run</h2><div id="detail" class="muted">Pick a run.</div>
<h2>Tree</h2><div id="tree"></div><h2>Timeline of sub-calls</h2><div id="timeline"></div></section>
</main>
<script>
"use strict";
const $=id=>document.getElementById(id);
const frag=new URLSearchParams(location.hash.slice(1));
if(frag.get("token"))sessionStorage.setItem("rlm-token",frag.get("token"));
$("token").value=sessionStorage.getItem("rlm-token")||"";
$("token").onchange=()=>{sessionStorage.setItem("rlm-token",$("token").value);refresh()};
const headers=()=>{const t=$("token").value;return t?{Authorization:"Bearer "+t}:{}};
const esc=s=>String(s??"").replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const secs=d=>Array.isArray(d)?(d[0]*18446744073709551616+d[1])/1e18:(+d||0);
let selected=null,watch=null,runs=[];
async function refresh(){
  try{
    const r=await fetch("/v1/runs",{headers:headers()});
    if(!r.ok){$("err").textContent=(await r.json()).error.message;return}
    const list=await r.json();$("err").textContent="";runs=list.data;
    const now=list.now;
    $("runs").innerHTML=runs.map(x=>`<tr class="run${x.id===selected?" sel":""}" data-id="${esc(x.id)}"><td><span class="st ${x.status}">${x.status.replace("_"," ")}</span></td><td class="q" title="${esc(x.query)}">${esc(x.query)}</td><td>${x.calls}</td><td>${x.tokens}</td><td>${((x.finished||now)-x.started).toFixed(1)} s</td></tr>`).join("")||`<tr><td colspan=5 class="muted">No runs yet.</td></tr>`;
    for(const tr of document.querySelectorAll("tr.run"))tr.onclick=()=>select(tr.dataset.id);
    $("clock").textContent="server time "+new Date(now*1000).toLocaleTimeString();
  }catch(e){$("err").textContent="cannot reach the server"}
}
async function select(id){
  selected=id;if(watch)watch.abort();watch=new AbortController();
  const state={nodes:new Map(),calls:new Map(),children:new Map(),end:0,seen:performance.now()};
  const tick=setInterval(()=>{if(selected===id&&!state.summary)render(state);else clearInterval(tick)},250);
  state.nodes.set(0,{id:0,parent:null,depth:0,turns:0,cells:0,status:"running"});
  $("title").textContent="Run "+id;render(state);refresh();
  try{
    const r=await fetch(`/v1/runs/${encodeURIComponent(id)}/events`,{headers:headers(),signal:watch.signal});
    const reader=r.body.getReader(),dec=new TextDecoder();let buf="";
    for(;;){const {value,done}=await reader.read();if(done)break;buf+=dec.decode(value,{stream:true});
      let i;while((i=buf.indexOf("\n\n"))>=0){const block=buf.slice(0,i);buf=buf.slice(i+2);
        const ev=/^event: (.*)$/m.exec(block),data=/^data: (.*)$/m.exec(block);if(!data)continue;
        const obj=JSON.parse(data[1]);if(ev&&ev[1]==="end"){state.summary=obj}else apply(state,obj);}
      render(state);}
    render(state);refresh();
  }catch(e){if(e.name!=="AbortError")$("err").textContent="the event stream broke off"}
}
function apply(s,e){
  const t=secs(e.time);s.end=Math.max(s.end,t);s.seen=performance.now();
  const k=Object.keys(e.kind)[0],v=e.kind[k]||{};
  let n=s.nodes.get(e.nodeID);if(!n){n={id:e.nodeID,parent:e.parentID,depth:e.depth,turns:0,cells:0,status:"running"};s.nodes.set(e.nodeID,n)}
  if(k==="iterationStarted")n.turns=v.iteration;
  if(k==="codeExecuted")n.cells++;
  if(k==="nodeStarted")n.query=v.query;
  if(k==="answer"){n.status="answered";n.answer=v.text}
  if(k==="limitReached")n.status="limit_reached";
  if(k==="subcallStarted")s.calls.set(e.nodeID+":"+v.callID,{node:e.nodeID,model:v.model,prompt:v.prompt,start:t});
  if(k==="subcallFinished"){const c=s.calls.get(e.nodeID+":"+v.callID);if(c){c.end=t;c.error=v.error}}
  if(k==="childStarted")s.children.set(v.childID,{start:t,prompt:v.prompt});
  if(k==="childFinished"){const c=s.children.get(v.childID);if(c)c.end=t}
}
function render(s){
  const sum=s.summary;
  // While the run goes on, "now" is the last event's time plus what the page's clock says since.
  const now=sum?s.end:s.end+(performance.now()-s.seen)/1000;
  $("detail").innerHTML=sum?`<span class="st ${sum.status}">${sum.status.replace("_"," ")}</span> ${esc((sum.answer||sum.error||"").slice(0,400))}`:`<span class="st running">running</span> <span class="muted">${s.nodes.size} node(s), ${s.calls.size} sub-call(s)</span>`;
  const kids=p=>[...s.nodes.values()].filter(n=>n.parent===p);
  const li=n=>`<li><span class="node">node ${n.id} · depth ${n.depth}</span> <span class="st ${n.status}">${n.status.replace("_"," ")}</span> <span class="muted">${n.turns} turn(s), ${n.cells} cell(s)</span>${n.query?` — ${esc(n.query.slice(0,80))}`:""}<ul class="tree">${kids(n.id).map(li).join("")}</ul></li>`;
  $("tree").innerHTML=`<ul class="tree">${kids(null).concat(s.nodes.has(0)&&s.nodes.get(0).parent!==null?[s.nodes.get(0)]:[]).map(li).join("")}</ul>`;
  const bars=[...s.calls.values()].map(c=>({...c,kind:"call"})).concat([...s.children.values()].map(c=>({...c,kind:"child",model:"child RLM"}))).sort((a,b)=>a.start-b.start);
  const lanes=[];for(const b of bars){const end=b.end??now;let l=lanes.findIndex(x=>x<=b.start);if(l<0){l=lanes.length;lanes.push(0)}lanes[l]=end;b.lane=l}
  const W=Math.max(420,$("timeline").clientWidth-10),H=24+lanes.length*16,span=Math.max(now,0.001),x=t=>40+(W-50)*t/span;
  let svg=`<svg width="${W}" height="${H}" role="img" aria-label="timeline"><line x1="40" x2="${W-10}" y1="14" y2="14" stroke="#ccd"/>`;
  for(let i=0;i<=4;i++){const t=span*i/4;svg+=`<text x="${x(t)}" y="10" text-anchor="${i===4?"end":"middle"}">${t.toFixed(2)}s</text>`}
  for(const b of bars){const x0=x(b.start),x1=Math.max(x(b.end??now),x0+2);svg+=`<rect x="${x0}" y="${20+b.lane*16}" width="${x1-x0}" height="12" rx="2" fill="${b.error?"#d6336c":b.kind==="child"?"#7048e8":b.end===undefined?"#74c0fc":"#2a7de1"}"><title>${esc(b.model)}: ${esc((b.prompt||"").slice(0,120))}</title></rect>`}
  svg+=`<text x="2" y="${H-4}">${lanes.length} lane(s)</text></svg>`;
  $("timeline").innerHTML=bars.length?svg:`<span class="muted">No sub-calls yet.</span>`;
}
refresh();setInterval(refresh,1000);
if(frag.get("run"))select(frag.get("run"));
</script></body></html>
"""#
}
