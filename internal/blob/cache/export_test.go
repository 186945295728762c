package cache

// WaitFills waits for the background copies started so far.
func (c *Cache) WaitFills() { c.wg.Wait() }
