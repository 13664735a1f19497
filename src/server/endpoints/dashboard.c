/* dashboard.c - the dashboard: GET / and its files, embedded at build time
 * (assets.h, embed.c); a minimal built-in page when clients/dashboard had
 * no index.html at configure time. */
#include <string.h>

#include "server/endpoints/assets.h"
#include "server/endpoints/common.h"
#include "server/endpoints/handlers.h"

static const char fallback_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>easytorchd</title>"
    "<style>body{font:14px sans-serif;margin:2em}canvas{border:1px solid #ccc}</style></head>"
    "<body><h1>easytorchd</h1><p>Token: <input id=\"tok\" type=\"password\"></p>"
    "<div id=\"models\">loading...</div><script>\n"
    "const hist={};\n"
    "function hdr(){const t=document.getElementById('tok').value;"
    "return t?{Authorization:'Bearer '+t}:{};}\n"
    "async function poll(){try{const r=await fetch('/v1/models',{headers:hdr()});"
    "const j=await r.json();const div=document.getElementById('models');"
    "if(!r.ok){div.textContent=j.error;return;}\n"
    "for(const m of j.models){let h=hist[m.name];if(!h){h=hist[m.name]={pts:[],since:-1};"
    "const s=document.createElement('div');s.innerHTML='<h3></h3><canvas width=600 height=200>"
    "</canvas>';s.id='m-'+m.name;s.querySelector('h3').textContent=m.name;div.appendChild(s);}\n"
    "const lr=await fetch('/v1/models/'+encodeURIComponent(m.name)+'/loss?since='+h.since,"
    "{headers:hdr()});const l=await lr.json();for(const p of l.history){h.pts.push(p);"
    "h.since=p[0];}draw(m.name,h.pts,m.step,m.loss);}\n"
    "if(div.textContent==='loading...')div.textContent=j.models.length?'':'no models';"
    "}catch(e){}}\n"
    "function draw(n,pts,step,loss){const s=document.getElementById('m-'+n);"
    "s.querySelector('h3').textContent=n+'  step '+step+'  loss '+loss;"
    "const c=s.querySelector('canvas').getContext('2d');c.clearRect(0,0,600,200);"
    "if(pts.length<2)return;const ys=pts.map(p=>Math.log10(Math.max(p[1],1e-12)));"
    "const lo=Math.min(...ys),hi=Math.max(...ys),x0=pts[0][0],x1=pts[pts.length-1][0];"
    "c.beginPath();pts.forEach((p,i)=>{const x=(p[0]-x0)/(x1-x0||1)*590+5,"
    "y=195-(ys[i]-lo)/(hi-lo||1)*190;i?c.lineTo(x,y):c.moveTo(x,y);});c.stroke();}\n"
    "poll();setInterval(poll,1000);\n"
    "</script></body></html>\n";

const etd_asset *etd_asset_find(const etd_asset *table, const char *name)
{
    for (const etd_asset *a = table; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static const etd_asset *find(const char *name) { return etd_asset_find(etd_assets, name); }

bool etd_asset_exists(const char *name) { return find(name) != NULL; }

const char *etd_mime_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".svg", "image/svg+xml"}, {".ico", "image/x-icon"},
        {".png", "image/png"}, {".json", "application/json"}, {".txt", "text/plain; charset=utf-8"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

void etd_h_index(etd_call *c)
{
    const etd_asset *a = find("index.html");
    c->rs->content_type = "text/html; charset=utf-8";
    c->rs->raw = a ? (const void *)a->data : fallback_page;
    c->rs->raw_len = a ? a->len : sizeof fallback_page - 1;
}

void etd_h_asset(etd_call *c)
{
    const etd_asset *a = find(c->rq->asset);
    if (!a) { /* the route only matches existing files (etd_asset_exists) */
        ep_error(c, 404, "no route GET %s", c->rq->path);
        return;
    }
    c->rs->raw = a->data;
    c->rs->raw_len = a->len;
    c->rs->content_type = etd_mime_type(a->name);
}
