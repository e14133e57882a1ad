using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_setxattr", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_setxattr(nint ioctx, string oid, string name, byte* buffer, nuint length);
}
