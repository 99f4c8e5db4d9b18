"""中文 catalogue for seckill's tooling: English text -> its Chinese, as a Chinese backend engineer says it.

Keyed by the English text itself (see seckill.i18n): when an English string changes at its call site its
old entry no longer matches, the message shows in English, and tests/test_i18n.py names the string until
it is translated again. Graders whose every check and hint is here are listed in GRADERS_TRANSLATED.
"""

from __future__ import annotations

# Graders (services/course/graders/<name>.py) whose titles and hints are all translated; tests/test_i18n.py
# fails when one of their English strings has no entry here.
GRADERS_TRANSLATED = ("stock",)

ZH: dict[str, str] = {
    # -- the grader's report (services/course/grader.py) --------------------------------------------------
    "{passed} of {total} checks passed": "{total} 项检查通过了 {passed} 项",
    "{title} — lab {lab!r}, implementation {impl}": "{title}：实验 {lab!r}，实现来自 {impl}",
    "pass": "通过",
    "FAIL": "失败",
    "passed": "通过",
    "failed": "失败",
    "hint:": "提示：",
    "Hint:": "提示：",
    "hint": "提示",
    "seen:": "实际：",
    "check": "检查项",
    "result": "结果",
    "lab": "实验",
    "implementation": "实现",
    " — well done!": "，全部通过，漂亮！",
    "Not implemented yet — write {function} in {shown} (explained in {notebook}).":
        "还没实现：在 {shown} 里写 {function}（做法见 {notebook}）。",
    "Not implemented yet: {function} (see above).": "还没实现：{function}（见上）。",
    "skip": "跳过",
    "skipped: depends on “{check}”, which failed above": "跳过：它依赖的“{check}”在上面已经失败",
    " s": " 秒",
    "skipped": "跳过",
    "Your code ended the whole process (it killed itself, crashed inside a C library, or "
    "called exit) while this check ran: look for what your code does to its own process.":
        "这项检查运行时，你的代码让整个进程结束了（自己杀掉了自己、在某个 C 库里崩溃，或者调用了 exit）："
        "看看你的代码对它自己所在的进程做了什么。",
    "Your code printed without end while this check ran: look for a print inside a loop "
    "that never finishes.":
        "这项检查运行时，你的代码一直在不停地打印：找找有没有放在永不结束的循环里的 print。",
    "Timed out: something waits forever or loops without end. Look for a lock that is taken and "
    "never released, or a loop whose exit condition never becomes true.":
        "超时了：有地方在无限等待或死循环。找找有没有拿了锁却不释放的地方，或者退出条件永远不成立的循环。",
    "fix:": "修复：",
    # lab titles
    "Token bucket": "令牌桶",
    "Rate limits in Redis": "基于 Redis 的限流",
    "Stock reservation in Redis": "基于 Redis 的库存预减",
    "Order producer (RabbitMQ)": "订单生产者（RabbitMQ）",
    "Order consumer (PostgreSQL)": "订单消费者（PostgreSQL）",

    # -- services/course/graders/stock.py ----------------------------------------------------------------
    "Try your StockCache in the notebook against Redis and compare with what it should do.":
        "在 notebook 里对着 Redis 试一下你的 StockCache，和它应有的行为对比一下。",
    "set_stock / get_stock": "set_stock / get_stock",
    "decr_stock / incr_stock": "decr_stock / incr_stock",
    "try_reserve never leaves stock negative": "try_reserve 绝不能让库存变成负数",
    "try_reserve under 50 threads": "50 个线程并发 try_reserve",
    "reserve_once: ok / already_bought / sold_out": "reserve_once：ok / already_bought / sold_out",
    "reserve_once under 50 threads": "50 个线程并发 reserve_once",
    "release gives an item back once": "release 只能归还一次",
    "reserve_once: one buyer racing itself gets one item": "reserve_once：同一个买家自己和自己抢，也只能拿到一件",
    "release: one buyer's concurrent releases return one item": "release：同一个买家并发归还，只能还回一件",
    "reserve / release / restock / try_reserve raced together keep the books":
        "reserve / release / restock / try_reserve 混在一起并发，账依然对得上",
    "a connection lost after any command, then a retry: nothing lost or created":
        "任意一条命令之后连接断开、再重试：既不丢也不凭空多出",
    "get_stock reads back what set_stock stored, as an int.":
        "get_stock 要读回 set_stock 存进去的值，类型是 int。",
    "A product never loaded has no stock: get_stock says None.":
        "从没加载过库存的商品没有库存：get_stock 应返回 None。",
    "decr_stock and incr_stock return the NEW count; decr_stock does not stop at zero (below zero is "
    "how the naive version shows it oversold).":
        "decr_stock 和 incr_stock 返回的是操作之后的新值；decr_stock 减到 0 也不停（减成负数，"
        "正是朴素版本暴露超卖的方式）。",
    "try_reserve says yes while there is stock and no once it is gone.":
        "有库存时 try_reserve 返回成功，库存没了就返回失败。",
    "A refused reservation must leave no trace: whatever it took from the counter to find out, it puts "
    "back, so the stock at rest is never below zero.":
        "被拒绝的预减不能留下痕迹：为了判断而从计数器里扣掉的，要原样加回去，"
        "这样静止时的库存永远不会小于 0。",
    "Checking the stock and then taking it are two steps another request can slip between. Let ONE "
    "atomic Redis operation decide who gets an item, and base the answer on what it returned.":
        "先查库存再扣库存是两步，别的请求可以插在中间。让一个原子的 Redis 操作来决定谁抢到，"
        "并且以它的返回值作为判断依据。",
    "reserve_once tells three outcomes apart: the item is yours, you already have one, none left.":
        "reserve_once 要区分三种结果：抢到了、你已经买过了、卖完了。",
    "A successful reservation takes one item AND records the buyer; the others change nothing.":
        "成功的预减既要扣一件库存，又要记下买家；其余两种结果什么都不改。",
    "A product with no stock loaded has nothing to sell.": "没有加载库存的商品，没有东西可卖。",
    "Under concurrency, 'already bought?', 'any left?', 'take one' and 'remember the buyer' must happen "
    "as ONE step inside Redis; done as separate commands from Python, requests interleave between "
    "them.":
        "并发之下，“买过没有？”“还有没有？”“扣一件”“记下买家”必须在 Redis 里作为一步完成"
        "（比如一段 Lua 脚本）；从 Python 分成几条命令发，请求就会在命令之间交错，导致超卖或一人多单。",
    "At most one item per buyer, also when the SAME buyer's requests arrive at the same moment (a double "
    "click, a retrying client): Under concurrency, 'already bought?', 'any left?', 'take one' and "
    "'remember the buyer' must happen as ONE step inside Redis; done as separate commands from Python, "
    "requests interleave between them.":
        "每个买家最多一件，即使是同一个买家的多个请求同时到达（双击按钮、客户端重试）也一样：并发之下，"
        "“买过没有？”“还有没有？”“扣一件”“记下买家”必须在 Redis 里作为一步完成；从 Python 分成几条命令发，"
        "请求就会在命令之间交错。",
    "Every item is accounted for: stock + items held == loaded + restocked, whatever mix of reserve_once, "
    "release, try_reserve and incr_stock runs at the same time. Each method must change the count and the "
    "buyers together, in one step, and only when it really took or gave back an item.":
        "每一件都要有着落：库存 + 已被占的件数 == 加载的 + 补货的，不管 reserve_once、release、try_reserve "
        "和 incr_stock 怎样混在一起同时运行。每个方法都必须在一步之内同时修改计数和买家，"
        "而且只在真的拿走或还回了一件时才修改。",
    "release must give an item back exactly once, also when the same buyer's releases run at the same "
    "moment (a retried cancel): 'does this buyer hold one?' and 'give it back' must be one step, or two "
    "releases both see the buyer and both give an item back.":
        "release 必须恰好归还一次，即使同一个买家的多次归还同时运行（重试的取消操作）也一样："
        "“这个买家手里有没有一件？”和“还回去”必须是一步，否则两次 release 都看到这个买家，都还回一件。",
    "A connection can drop between any two commands your code sends. If reserving or releasing takes "
    "several commands, a drop in between leaves the count and the buyers disagreeing, and the caller's "
    "retry cannot repair it: make each decision one step inside Redis.":
        "你的代码发出的任意两条命令之间，连接都可能断开。如果预减或归还要用好几条命令，中间一断，"
        "计数和买家就对不上了，调用方的重试也修不好：让每个决定在 Redis 里一步完成。",
    "release gives the buyer's item back to stock and forgets the buyer.":
        "release 把买家占的那件还回库存，并把这个买家从记录里删掉。",
    "Only someone who really holds an item can give one back, and only once: otherwise a retried "
    "release creates stock out of nothing.":
        "只有真正占了一件的人才能归还，而且只能还一次（幂等）；否则一次重试的 release 就会凭空变出库存。",
}
