const soap = require('soap');

const endpoint = process.argv[2] || 'http://127.0.0.1:8080/soap';

(async () => {
  const client = await soap.createClientAsync(`${endpoint}?wsdl`);
  const [result] = await client.UpdateUserPasswordAsync({
    credentials: {
      accountUrl: 'http://myaccount.ispringlearn.com',
      email: 'admin@example.com',
      password: 'Admin-Demo-Pass-5820',
    },
    userId: 'u-learner2',
    password: 'Node-Example-Pass-8206!',
  });
  console.log('success:', result.success);
  try {
    await client.UpdateUserPasswordAsync({
      credentials: { accountUrl: 'http://myaccount.ispringlearn.com', email: 'admin@example.com', password: 'wrong' },
      userId: 'u-learner2',
      password: 'Node-Example-Pass-8207!',
    });
  } catch (err) {
    const detail = err.root.Envelope.Body.Fault.detail;
    console.log('fault:', err.root.Envelope.Body.Fault.faultstring, Object.keys(detail)[0]);
  }
})();
