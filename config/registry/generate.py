#!/usr/bin/env python3
"""Regenerates the registry seed for a small district of Xiqing (region 120111).

Deterministic: the same CSVs every run. `python3 config/registry/generate.py` from the repo root.
The hub imports them with `hub registry import config/registry`; firmware-sim simulates sensors.csv.
"""
import csv, os, random

here = os.path.dirname(os.path.abspath(__file__))
rnd = random.Random(120111)
REGION = "120111"

regions = [("120111", "西青区", "Xiqing District, Tianjin")]

# id,name,duty of each department; its contact is <id>@xiqing.example.
DEPARTMENTS = """\
cg,城管局,城市管理综合执法
sw,水务局,供排水
xf,消防救援支队,消防
ga,公安分局,治安
zm,市政照明所,路灯照明
jd,西营门街道办,街道办事处
rq,燃气公司,燃气
dl,供电公司,电力
tx,通信管理办,通信管线
rl,热力公司,供热
sj,市场监管局,特种设备(电梯)
hb,生态环境局,环境监测
"""
departments = [(d, name, duty, f"{d}@xiqing.example")
               for d, name, duty in (row.split(",") for row in DEPARTMENTS.splitlines())]

# (code, major, name_zh, name_en, sensor_type, default owner, source)
classes = [
    ("0101", "01", "上水井盖", "water-supply manhole cover", "manhole_cover", "sw", "GB/T 30428"),
    ("0102", "01", "污水井盖", "sewage manhole cover", "manhole_cover", "sw", "GB/T 30428"),
    ("0103", "01", "雨水井盖", "storm-drain manhole cover", "manhole_cover", "sw", "GB/T 30428"),
    ("0105", "01", "电力井盖", "power manhole cover", "manhole_cover", "dl", "GB/T 30428"),
    ("0106", "01", "路灯井盖", "street-light manhole cover", "manhole_cover", "zm", "GB/T 30428"),
    ("0107", "01", "通讯井盖", "telecom manhole cover", "manhole_cover", "tx", "GB/T 30428"),
    ("0110", "01", "热力井盖", "heating manhole cover", "manhole_cover", "rl", "GB/T 30428"),
    ("0111", "01", "燃气井盖", "gas manhole cover", "manhole_cover", "rq", "GB/T 30428"),
    ("0112", "01", "公安井盖", "police manhole cover", "manhole_cover", "ga", "GB/T 30428"),
    ("0113", "01", "消防设施", "fire hydrant", "fire_hydrant", "xf", "GB/T 30428"),
    ("0114", "01", "无主井盖", "ownerless manhole cover", "manhole_cover", "cg", "GB/T 30428"),
    ("0118", "01", "路灯", "street lamp", "street_light", "zm", "GB/T 30428"),
    # Regional extension classes (扩展部件) for sensor-equipped facilities the national table lacks.
    ("0650", "06", "积水监测点", "flood gauge", "flood_gauge", "sw", "regional extension"),
    ("0651", "06", "烟感探测器", "smoke detector", "smoke_detector", "xf", "regional extension"),
    ("0652", "06", "燃气探测器", "gas detector", "gas_detector", "rq", "regional extension"),
    ("0653", "06", "门磁", "door contact", "door_contact", "ga", "regional extension"),
    ("0654", "06", "周界入侵探测", "intrusion detector", "intrusion", "ga", "regional extension"),
    ("0655", "06", "电梯", "elevator", "elevator", "sj", "regional extension"),
    ("0656", "06", "电气火灾监测", "electrical fire monitor", "electrical_fire", "xf", "regional extension"),
    ("0657", "06", "垃圾桶", "waste bin", "waste_bin", "cg", "regional extension"),
    ("0658", "06", "环境监测点", "environment station", "environment", "hb", "regional extension"),
]

# Streets are top-level cells; communities are the grid cells components live in.
streets = [("120111001", "西营门街", 39.150, 117.040), ("120111002", "李七庄街", 39.110, 117.080)]
cells = []
for sid, sname, lat0, lon0 in streets:
    for i, cname in enumerate(["第一网格", "第二网格", "第三网格"]):
        lat = lat0 + (i // 2) * 0.012
        lon = lon0 + (i % 2) * 0.016
        cells.append((f"{sid}{i + 1:03d}", f"{sname}{cname}", sid, lat, lon, lat + 0.012, lon + 0.016))

# sensor type -> (count, sensor-id prefix, interval s, [(profile, how many)], classes to spread over)
plan = [
    ("manhole_cover", 50, "MH", 60, [("gridsense", 30), ("canonical", 10), ("serial-binary", 10)],
     ["0101", "0102", "0103", "0105", "0106", "0107", "0110", "0111", "0112", "0114"]),
    ("street_light", 30, "SL", 30, [("lumen", 25), ("canonical", 5)], ["0118"]),
    ("fire_hydrant", 20, "HY", 30, [("acme", 12), ("serial-text", 8)], ["0113"]),
    ("flood_gauge", 10, "FG", 30, [("acme", 6), ("canonical", 4)], ["0650"]),
    ("smoke_detector", 20, "SM", 60, [("gridsense", 14), ("canonical", 6)], ["0651"]),
    ("gas_detector", 10, "GS", 30, [("gridsense", 5), ("serial-binary", 5)], ["0652"]),
    ("door_contact", 10, "DC", 60, [("gridsense", 6), ("canonical", 4)], ["0653"]),
    ("intrusion", 10, "IR", 60, [("gridsense", 6), ("canonical", 4)], ["0654"]),
    ("elevator", 10, "EV", 30, [("gridsense", 6), ("serial-binary", 4)], ["0655"]),
    ("electrical_fire", 10, "EF", 30, [("lumen", 6), ("canonical", 4)], ["0656"]),
    ("waste_bin", 10, "WB", 300, [("gridsense", 5), ("canonical", 5)], ["0657"]),
    ("environment", 10, "EN", 60, [("gridsense", 4), ("canonical", 6)], ["0658"]),
]
names_zh = {
    "manhole_cover": "井盖", "street_light": "路灯", "fire_hydrant": "消火栓", "flood_gauge": "积水点",
    "smoke_detector": "烟感", "gas_detector": "燃气探测", "door_contact": "门磁", "intrusion": "周界",
    "elevator": "电梯", "electrical_fire": "电气火灾", "waste_bin": "垃圾桶", "environment": "环境监测",
}
roads = ["大寺路", "中北大道", "津静公路", "昌凌路", "华苑路", "宾水西道", "杨柳青大道", "外环线辅路"]
owner_of = {c[0]: c[5] for c in classes}
maintainer_for = {"sw": "sw", "dl": "dl", "zm": "zm", "tx": "tx", "rl": "rl", "rq": "rq", "ga": "ga",
                  "xf": "xf", "cg": "jd", "sj": "sj", "hb": "hb"}

serial_per_class = {}
components, sensors = [], []
for stype, count, prefix, interval, profiles, cls in plan:
    profile_of = [p for p, n in profiles for _ in range(n)]
    for n in range(count):
        code = cls[n % len(cls)]
        serial_per_class[code] = serial_per_class.get(code, 0) + 1
        cid = f"{REGION}{code}{serial_per_class[code]:06d}"
        cell = cells[n % len(cells)]
        lat = round(rnd.uniform(cell[3] + 0.001, cell[5] - 0.001), 6)
        lon = round(rnd.uniform(cell[4] + 0.001, cell[6] - 0.001), 6)
        owner = owner_of[code]
        road = roads[rnd.randrange(len(roads))]
        components.append((cid, stype, f"{road}{names_zh[stype]}{n + 1:03d}", f"天津市西青区{road}{rnd.randint(1, 400)}号",
                           lat, lon, cell[0], owner, maintainer_for[owner]))
        sensor_id = f"{prefix}-{n + 1:04d}"
        profile = profile_of[n]
        address = {"gridsense": f"GW-{(n % len(cells)) // 2 + 1:02d}", "serial-binary": "A", "serial-text": "B"}.get(profile, "")
        sensors.append((sensor_id, cid, stype, profile, address, interval, "edge-xq-01"))

def write(name, header, rows):
    with open(os.path.join(here, name), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)

write("regions.csv", ["code", "name_zh", "name_en"], regions)
write("departments.csv", ["id", "name", "duty", "contact"], departments)
write("classes.csv", ["code", "major", "name_zh", "name_en", "sensor_type", "default_owner", "source"], classes)
write("grid_cells.csv", ["id", "name", "parent", "lat_min", "lon_min", "lat_max", "lon_max"],
      [(s[0], s[1], "", "", "", "", "") for s in streets] + cells)
write("components.csv", ["id", "type", "name", "address", "lat", "lon", "grid_cell", "owner_department",
                         "maintainer_department"], components)
write("sensors.csv", ["id", "component_id", "type", "profile", "address", "interval_s", "edge"], sensors)
write("edges.csv", ["id", "name", "site"], [("edge-xq-01", "西营门街边缘网关", "西营门街综合机房")])
print(f"{len(components)} components, {len(sensors)} sensors, {len(cells)} grid cells")
