// The bench page: draws a run's JSON document (tables and SVG charts); no network.
(function(){
const NS="http://www.w3.org/2000/svg";
function el(tag,attrs,parent,text){const e=document.createElement(tag);
 for(const k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;
 if(parent)parent.appendChild(e);return e;}
function sv(tag,attrs,parent,text){const e=document.createElementNS(NS,tag);
 for(const k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;
 if(parent)parent.appendChild(e);return e;}
function fixed(v,d){return v.toLocaleString("en-US",{minimumFractionDigits:d,maximumFractionDigits:d});}
const FMT={int:v=>fixed(v,0),tps:v=>fixed(v,1),ms:v=>fixed(v,3),pct:v=>fixed(100*v,2)+"%",
 num:v=>fixed(v,2)};
function fmt(v,kind){return (v===null||v===undefined||!isFinite(v))?"-":FMT[kind](v);}
function cell(tr,key,v,kind){return el("td",{"data-key":key,"data-value":
 (v===null||v===undefined)?"":String(v)},tr,fmt(v,kind));}
function label(kind){return kind.startsWith("status_")?"HTTP "+kind.slice(7):kind.replace(/_/g," ");}
function section(parent,title,id){const s=el("section",{id:id},parent);el("h2",{},s,title);return s;}

function chart(parent,title,xs,series,opts){
 opts=opts||{};const W=560,H=190,L=56,R=12,T=10,B=26;
 const s=section(parent,title,opts.id);const g=sv("svg",{viewBox:`0 0 ${W} ${H}`,width:"100%",
  role:"img","aria-label":title},s);
 const xmax=Math.max(1,...xs.map((x,i)=>x+(opts.widths?opts.widths[i]:0)));
 let ymax=0;for(const se of series)for(const y of se.ys)if(y!==null&&isFinite(y))ymax=Math.max(ymax,y);
 ymax=ymax>0?ymax*1.1:1;
 const X=x=>L+(W-L-R)*x/xmax,Y=y=>T+(H-T-B)*(1-y/ymax);
 sv("line",{x1:L,y1:H-B,x2:W-R,y2:H-B,stroke:"#888"},g);sv("line",{x1:L,y1:T,x2:L,y2:H-B,stroke:"#888"},g);
 for(let i=0;i<=4;i++){const y=ymax*i/4;sv("line",{x1:L,x2:W-R,y1:Y(y),y2:Y(y),stroke:"#eee"},g);
  sv("text",{x:L-4,y:Y(y)+4,"text-anchor":"end"},g,y>=100?fixed(y,0):(y>=10?fixed(y,1):fixed(y,2)));}
 const step=Math.max(1,Math.ceil(xmax/10));
 for(let x=0;x<=xmax;x+=step)sv("text",{x:X(x),y:H-B+14,"text-anchor":"middle"},g,String(x));
 sv("text",{x:W-R,y:H-2,"text-anchor":"end"},g,"seconds");
 let lx=L+8;
 for(const se of series){
  let d="";let pen=false;
  se.ys.forEach((y,i)=>{if(y===null||!isFinite(y)){pen=false;return;}
   if(se.step){const x0=X(xs[i]),x1=X(xs[i]+(opts.widths?opts.widths[i]:1));
    d+=(pen?"L":"M")+x0.toFixed(1)+" "+Y(y).toFixed(1)+"L"+x1.toFixed(1)+" "+Y(y).toFixed(1);}
   else d+=(pen?"L":"M")+X(xs[i]+(opts.widths?opts.widths[i]/2:0)).toFixed(1)+" "+Y(y).toFixed(1);
   pen=true;});
  sv("path",{d:d,fill:"none",stroke:se.color,"stroke-width":1.8,
   "stroke-dasharray":se.dash||"","data-series":se.name},g);
  if(!se.step&&xs.length<=40)se.ys.forEach((y,i)=>{if(y===null||!isFinite(y))return;
   sv("circle",{cx:X(xs[i]+(opts.widths?opts.widths[i]/2:0)).toFixed(1),cy:Y(y).toFixed(1),r:2.5,
    fill:se.color},g);});
  sv("rect",{x:lx,y:T+2,width:10,height:3,fill:se.color},g);
  const t=sv("text",{x:lx+14,y:T+8},g,se.name);lx+=20+7*se.name.length;}
 return s;}

function render(doc,state){
 const root=document.getElementById("app");root.textContent="";
 const st=document.getElementById("status");
 st.textContent=state;st.className=state==="running"?"running":(doc.interrupted||doc.aborted?"stopped":"final");
 document.getElementById("sub").textContent=doc.url+"  ·  "+doc.requests_desc+"  ·  "+
  (doc.model==="open"?(doc.stages?"open model, stages "+doc.stages.map(s=>s[0]+"s:"+s[1]).join(","):
  "open model, "+fmt(doc.rate,"tps")+" req/s intended")+", "+doc.users+" connections":
  "closed model, "+doc.users+" virtual users")+"  ·  "+(doc.started_at||"");
 const k=el("div",{class:"kpis",id:"kpis"},root);
 function kpi(key,v,kind,l){const d=el("div",{class:"kpi"},k);
  el("div",{class:"v","data-key":key,"data-value":(v===null||v===undefined)?"":String(v)},d,fmt(v,kind));
  el("div",{class:"l"},d,l);}
 const lat=doc.latency_ms||{};
 kpi("rps",doc.rps,"tps","TPS");kpi("p50",lat.p50,"ms","p50 ms");kpi("p90",lat.p90,"ms","p90 ms");
 kpi("p99",lat.p99,"ms","p99 ms");kpi("p99.9",lat["p99.9"],"ms","p99.9 ms");
 kpi("requests",doc.requests,"int","requests");kpi("error_count",doc.error_count,"int","errors");
 if(doc.accuracy!==null&&doc.accuracy!==undefined)kpi("accuracy",doc.accuracy,"pct","accuracy");
 // the drain after the deadline is a sliver of a second: its rates would plot as noise
 const all=doc.timeline||[];const full=all.filter(r=>r.span_s>=0.5);
 const tl=full.length?full:all;const xs=tl.map(r=>r.second),ws=tl.map(r=>r.span_s);
 const tpsSeries=[{name:"successes/s",color:"#2b6cb0",ys:tl.map(r=>r.successes/(r.span_s||1))},
  {name:"errors/s",color:"#c53030",ys:tl.map(r=>r.errors/(r.span_s||1))}];
 if(doc.model==="open"){tpsSeries.push({name:"intended/s",color:"#555",dash:"5 3",
  ys:tl.map(r=>r.intended)});tpsSeries.push({name:"sent/s",color:"#dd8a00",
  ys:tl.map(r=>r.sent/(r.span_s||1))});}
 chart(root,doc.model==="open"?"Intended vs achieved rate (req/s)":"TPS (req/s)",xs,
  tpsSeries,{widths:ws,id:"chart-tps"});
 chart(root,"Latency of successes (ms)",xs,[{name:"p50",color:"#2f855a",ys:tl.map(r=>r.p50_ms)},
  {name:"p90",color:"#dd6b20",ys:tl.map(r=>r.p90_ms)},{name:"p99",color:"#c53030",
  ys:tl.map(r=>r.p99_ms)}],{widths:ws,id:"chart-latency"});
 if(doc.model!=="open")chart(root,"Active virtual users",xs,[{name:"users",color:"#6b46c1",step:true,
  ys:tl.map(r=>r.active_users)}],{widths:ws,id:"chart-users"});
 const s=section(root,"Summary","summary");const t=el("table",{},s);
 function row(name,key,v,kind){const tr=el("tr",{},t);el("td",{},tr,name);cell(tr,key,v,kind);}
 row("elapsed (s)","elapsed_s",doc.elapsed_s,"num");row("requests","requests",doc.requests,"int");
 row("successes","successes",doc.successes,"int");row("errors","error_count",doc.error_count,"int");
 row("TPS","rps",doc.rps,"tps");row("peak TPS","peak_rps",doc.peak_rps,"tps");
 for(const q of ["min","p50","p90","p99","p99.9","max","mean"])row(q+" (ms)",q,lat[q],"ms");
 if(doc.checked){row("checked answers","checked",doc.checked,"int");
  row("accuracy (vs labels)","accuracy",doc.accuracy,"pct");}
 if(doc.model==="open"){row("intended","intended",doc.intended,"int");row("sent","sent",doc.sent,"int");
  row("late","late",doc.late,"int");row("never sent","unsent",doc.unsent,"int");}
 const f=doc.failed_latency_ms||{};
 if(f.p50!==undefined){row("failed: p50 (ms)","failed.p50",f.p50,"ms");
  row("failed: p99 (ms)","failed.p99",f.p99,"ms");}
 const es=section(root,"Errors by kind","errors");const et=el("table",{},es);
 const kinds=Object.keys(doc.errors||{}).sort();
 if(!kinds.length)el("p",{},es,"no errors");
 for(const kd of kinds){const tr=el("tr",{},et);el("td",{},tr,label(kd));
  cell(tr,"errors."+kd,doc.errors[kd],"int");}
 if(doc.slo&&doc.slo.length){const ss=section(root,"SLOs","slo");const st2=el("table",{},ss);
  const h=el("tr",{},st2);for(const c of ["SLO","threshold","actual","verdict"])el("th",{},h,c);
  for(const v of doc.slo){const tr=el("tr",{},st2);el("td",{},tr,v.slo);
   const kind=v.unit==="%"?"pct":(v.unit==="ms"?"ms":(v.unit==="req/s"?"tps":"num"));
   cell(tr,"slo.threshold",v.threshold,kind);cell(tr,"slo.actual",v.actual,kind);
   el("td",{class:v.ok?"pass":"fail","data-key":"slo.ok","data-value":String(v.ok)},tr,
    v.ok?"pass":"FAIL");}}
 if(doc.baseline){const bs=section(root,"Against the baseline "+(doc.baseline.source||""),"baseline");
  const bt=el("table",{},bs);const h=el("tr",{},bt);
  for(const c of ["figure","baseline","this run","change","noise (2 SE)","beyond noise?"])el("th",{},h,c);
  for(const r of doc.baseline.rows){const tr=el("tr",{},bt);el("td",{},tr,r.label);
   const kind=(r.figure==="errors"||r.figure==="accuracy")?"pct":(r.figure.includes("tps")?"tps":"ms");
   cell(tr,"baseline."+r.figure,r.baseline,kind);cell(tr,"current."+r.figure,r.current,kind);
   el("td",{},tr,r.change===null?"-":((r.change>=0?"+":"")+fixed(100*r.change,1)+"%"));
   el("td",{},tr,r.noise===null?"-":"±"+fmt(r.noise,kind));
   el("td",{class:r.beyond_noise?"fail":""},tr,r.beyond_noise===null?"n/a":(r.beyond_noise?"yes":"no"));}}
 if(doc.items&&doc.items.length){const ms=section(root,"Mix: each item","items");
  const mt=el("table",{},ms);const h=el("tr",{},mt);
  for(const c of ["item","weight","requests","errors","TPS","p50 ms","p99 ms"])el("th",{},h,c);
  for(const it of doc.items){const tr=el("tr",{},mt);el("td",{},tr,it.name);
   cell(tr,"items.weight",it.weight,"num");cell(tr,"items.requests",it.requests,"int");
   cell(tr,"items.error_count",it.error_count,"int");cell(tr,"items.rps",it.rps,"tps");
   cell(tr,"items.p50",(it.latency_ms||{}).p50,"ms");cell(tr,"items.p99",(it.latency_ms||{}).p99,"ms");}}
 const tm=doc.target_metrics||[];
 if(tm.length){const txs=tm.map(m=>m.second),tw=tm.map(()=>1);
  chart(root,"Target's /metrics: requests answered per second",txs,
   [{name:"answered/s",color:"#2b6cb0",ys:tm.map(m=>m.server_rps)}],{widths:tw,id:"chart-target"});
  const batching=tm.some(m=>m.batch_rows!==null&&m.batch_rows!==undefined);
  chart(root,"Target: requests in the server (λ·W) and rows per predict call"+
   (batching?"":" (no micro-batching)"),txs,
   [{name:"in server",color:"#805ad5",ys:tm.map(m=>m.in_server)},
    {name:"batch rows",color:"#38a169",ys:tm.map(m=>m.batch_rows)}],{widths:tw,id:"chart-batch"});
  const pids=[...new Set(tm.flatMap(m=>Object.keys(m.worker_cpu||{})))];
  const colors=["#c05621","#2c7a7b","#b83280","#4a5568","#2b6cb0","#744210"];
  chart(root,"Target: CPU of each worker process (%)",txs,pids.map((p,i)=>({name:"pid "+p,
   color:colors[i%colors.length],ys:tm.map(m=>(m.worker_cpu||{})[p]??null)})),{widths:tw,id:"chart-cpu"});}
 if(doc.warnings&&doc.warnings.length){const ws2=section(root,"Warnings","warnings");
  for(const w of doc.warnings)el("p",{class:"warn"},ws2,w);}
 document.title="fishpredict bench: "+fmt(doc.rps,"tps")+" TPS ("+state+")";
 document.body.setAttribute("data-state",state);}

const data=JSON.parse(document.getElementById("data").textContent);
render(data.doc,data.state);
if(data.live){const es=new EventSource("events");
 es.addEventListener("report",e=>{const m=JSON.parse(e.data);render(m.doc,m.state);});}
})();
