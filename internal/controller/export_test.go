package controller

// InboxLen is how many reports wait in service's inbox, for tests.
func (c *Controller) InboxLen(service string) int {
	c.mu.RLock()
	svc := c.services[service]
	c.mu.RUnlock()
	if svc == nil {
		return 0
	}
	n := 0
	for i := range svc.inbox {
		sh := &svc.inbox[i]
		sh.mu.Lock()
		n += len(sh.reports)
		sh.mu.Unlock()
	}
	return n
}
